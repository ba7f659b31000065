//! The admin API's cases: every route with the value in each path segment, each query
//! parameter (and an unknown one), each field of its JSON body (and an unknown one, a wrong
//! type, a body that is not JSON), and in the caller's session name. Each request is the
//! Function URL's event, made from `events/admin-api/cycle.json`.

use integration_tests::corpus::{Placed, malformed, path_segment, variants};
use serde_json::{Value, json};

use crate::inputs::{Case, Target, sample};

/// Stands for a command id unique to the case, so that no case replays another's command.
const COMMAND: &str = "<command>";

/// A route with valid parts: method, path, query and JSON body.
struct Route {
    method: &'static str,
    path: String,
    query: Vec<(&'static str, &'static str)>,
    body: Option<Value>,
}

/// The routes, on `customer`'s delivery; a customer's preferences on `other`, whose deliveries
/// no other route touches (a valid change moves that customer's waiting deliveries).
fn routes(customer: &str, other: &str) -> Vec<Route> {
    let command = |extra: Value| {
        let mut b = json!({"command_id": COMMAND, "reason": "customer asked on the phone"});
        if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
            b.extend(e);
        }
        Some(b)
    };
    let get = |path: &str, query: Vec<(&'static str, &'static str)>| Route {
        method: "GET",
        path: path.to_owned(),
        query,
        body: None,
    };
    let delivery = format!("/cycles/2026-11/deliveries/{customer}");
    let mut out = vec![
        get("/cycles/2026-11", vec![]),
        get("/cycles/2026-11/funnel", vec![]),
        get(
            "/cycles/2026-11/failures",
            vec![("limit", "10"), ("next", "eyJhIjoiYiJ9")],
        ),
        get(&delivery, vec![]),
        get("/commands/sample-resend-C0000001", vec![]),
        get(
            "/audit",
            vec![("day", "2026-12-16"), ("limit", "10"), ("next", "eyJhIjoiYiJ9")],
        ),
        get("/templates", vec![]),
        get("/templates/v1/preview", vec![("sample", "family")]),
        get("/settings", vec![]),
        get("/settings/channel-policy", vec![]),
        get("/queues", vec![]),
        get("/queues/delivery-dlq", vec![]),
    ];
    for (verb, extra) in [
        ("schedule", json!({"available_at": "2026-12-16T10:00:00+09:00"})),
        ("resend", json!({"channel": "sms"})),
        ("convert-to-sms", json!({})),
        ("force-send", json!({})),
        ("hold", json!({})),
        ("confirm", json!({})),
    ] {
        out.push(Route {
            method: "POST",
            path: format!("{delivery}/{verb}"),
            query: vec![],
            body: command(extra),
        });
    }
    out.push(Route {
        method: "POST",
        path: "/templates/v1/activate".into(),
        query: vec![],
        body: command(json!({})),
    });
    out.push(Route {
        method: "PUT",
        path: "/settings/channel-policy".into(),
        query: vec![],
        body: command(json!({"value": "email,sms"})),
    });
    out.push(Route {
        method: "POST",
        path: "/queues/delivery-dlq/redrive".into(),
        query: vec![],
        body: command(json!({"max_per_second": 10})),
    });
    out.push(Route {
        method: "PUT",
        path: format!("/customers/{other}/preferences"),
        query: vec![],
        body: command(json!({
            "send_day": 20,
            "dnd": [4],
            "preferred_channel": "sms",
            "contact": {"email": "a@b.kr"}
        })),
    });
    out.push(get("/roles", vec![]));
    out.push(Route {
        method: "PUT",
        path: "/roles/arn:aws:iam::123456789012:role/billing-viewer".into(),
        query: vec![],
        body: command(json!({"role": "viewer"})),
    });
    out
}

/// The Function URL's event for one request.
fn event(
    template: &Value,
    n: usize,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: Option<String>,
    caller: &str,
) -> Value {
    let mut e = template.clone();
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["requestId"] = json!(format!("corpus-r{n:05}"));
    e["requestContext"]["authorizer"]["iam"]["userArn"] = json!(caller);
    let raw: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", path_segment(k), path_segment(v)))
        .collect();
    e["rawQueryString"] = json!(raw.join("&"));
    let params: serde_json::Map<String, Value> = query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    e["queryStringParameters"] = Value::Object(params);
    if let Some(b) = body {
        e["body"] = json!(b);
    }
    e
}

/// Every admin API case for `values`, asked by `caller` (a role session of an administrator),
/// but for the cases with the value as the caller's session name; `customer` has a queued
/// delivery in cycle 2026-11, and `other` is the customer whose preferences the corpus changes;
/// the cases are numbered from `first_id`.
pub fn cases(values: &[Placed], customer: &str, other: &str, caller: &str, first_id: usize) -> Vec<Case> {
    let template = sample("admin-api/cycle.json");
    let mut out: Vec<Case> = Vec::new();
    let push = |out: &mut Vec<Case>, field: String, value: &str, request: &dyn Fn(usize) -> Value| {
        let n = first_id + out.len();
        out.push(Case {
            target: Target::Function("admin-api"),
            field,
            value: value.to_owned(),
            payload: request(n),
        });
    };
    let routes = routes(customer, other);
    for v in values {
        let text = v.text.as_str();
        for r in &routes {
            let shown = format!("{} {}", r.method, r.path);
            let query: Vec<(String, String)> = r.query.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            let body_of = |b: &Value, n: usize| {
                let mut b = b.clone();
                if b["command_id"] == COMMAND {
                    b["command_id"] = json!(format!("corpus-c{n:05}"));
                }
                b.to_string()
            };
            let valid_body = |n: usize| r.body.as_ref().map(|b| body_of(b, n));
            // Each path segment.
            let segments: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
            for i in 0..segments.len() {
                let mut s: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
                s[i] = path_segment(text);
                let path = format!("/{}", s.join("/"));
                push(&mut out, format!("{shown} path segment {i}"), &v.label, &|n| {
                    event(&template, n, r.method, &path, &query, valid_body(n), caller)
                });
            }
            // Each query parameter, an unknown one, and one named by the value.
            let mut queries: Vec<(String, Vec<(String, String)>)> = Vec::new();
            for i in 0..query.len() {
                let mut q = query.clone();
                q[i].1 = text.to_owned();
                queries.push((format!("query {}", q[i].0), q));
            }
            // Unknown parameters: on the routes that read a query, and on one that reads none
            // (the router does not look at the query; every route is alike there).
            if !query.is_empty() || r.path == "/cycles/2026-11" {
                let mut q = query.clone();
                q.push(("corpus_note".into(), text.to_owned()));
                queries.push(("query corpus_note (unknown parameter)".into(), q));
                let mut q = query.clone();
                q.push((text.to_owned(), "1".into()));
                queries.push(("query <value>=1 (unknown parameter named by the value)".into(), q));
            }
            for (field, q) in queries {
                push(&mut out, format!("{shown} {field}"), &v.label, &|n| {
                    event(&template, n, r.method, &r.path, &q, valid_body(n), caller)
                });
            }
            // Each body field, unknown fields, wrong types; bodies that are not JSON.
            if let Some(b) = &r.body {
                for variant in variants(b, text) {
                    push(&mut out, format!("{shown} body{}", variant.field), &v.label, &|n| {
                        event(
                            &template,
                            n,
                            r.method,
                            &r.path,
                            &query,
                            Some(body_of(&variant.input, n)),
                            caller,
                        )
                    });
                }
                for (field, raw) in malformed(b, text) {
                    push(&mut out, format!("{shown} body: {field}"), &v.label, &|n| {
                        event(&template, n, r.method, &r.path, &query, Some(raw.clone()), caller)
                    });
                }
            }
        }
        // The caller's session name.
        let role = caller.rsplit_once('/').map_or(caller, |(role, _)| role);
        let named = format!("{role}/{text}");
        for r in routes
            .iter()
            .filter(|r| r.path == "/cycles/2026-11" || r.path.ends_with("/hold"))
        {
            push(
                &mut out,
                format!("{} {} caller session name", r.method, r.path),
                &v.label,
                &|n| event(&template, n, r.method, &r.path, &[], valid_body_of(r, n), &named),
            );
        }
    }
    out
}

fn valid_body_of(r: &Route, n: usize) -> Option<String> {
    r.body.as_ref().map(|b| {
        let mut b = b.clone();
        b["command_id"] = json!(format!("corpus-c{n:05}"));
        b.to_string()
    })
}
