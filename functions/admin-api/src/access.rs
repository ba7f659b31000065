//! The routes and the role each needs: one table ([`ROUTES`]), read by the router before any
//! handler runs, so no handler checks a role of its own and no route is left unchecked.
//!
//! A pattern's `{name}` takes one path segment, `{name+}` the rest of the path (a principal's
//! ARN holds slashes).

use crate::roles::Role;

/// What a route does; the router runs its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Cycles,
    Cycle,
    Funnel,
    Failures,
    Delivery,
    /// A command on one delivery: the verb (one of [`crate::DELIVERY_COMMANDS`]).
    DeliveryCommand(&'static str),
    Command,
    Audit,
    Templates,
    Preview,
    Activate,
    Settings,
    Setting,
    PutSetting,
    Queues,
    Queue,
    Redrive,
    Roles,
    SetRole,
    /// A customer's own preferences ([`crate::preferences`]).
    Preferences,
    /// The suppression list ([`crate::suppressions`]): list, add, remove.
    Suppressions,
    Suppress,
    Unsuppress,
    /// A settled bill's corrections ([`crate::corrections`]): list, add.
    Corrections,
    Correct,
}

/// One route: its method and path pattern, the role it needs, what it does.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub needs: Role,
    pub endpoint: Endpoint,
}

const fn route(method: &'static str, pattern: &'static str, needs: Role, endpoint: Endpoint) -> Route {
    Route {
        method,
        pattern,
        needs,
        endpoint,
    }
}

use Endpoint as E;
use Role::{Administrator, Operator, Viewer};

/// Every route and the role it needs. A viewer reads; an operator also gives the commands
/// that keep the customer's do-not-disturb slots, adds and removes suppression-list entries,
/// and sets a customer's own preferences for
/// them (a customer-service application acting for the customer runs under an operator's
/// role); an administrator also sends past them,
/// changes settings, templates and roles, redrives queues, and corrects settled bills.
pub const ROUTES: &[Route] = &[
    route("GET", "/cycles", Viewer, E::Cycles),
    route("GET", "/cycles/{cycle}", Viewer, E::Cycle),
    route("GET", "/cycles/{cycle}/funnel", Viewer, E::Funnel),
    route("GET", "/cycles/{cycle}/failures", Viewer, E::Failures),
    route("GET", "/cycles/{cycle}/deliveries/{customer}", Viewer, E::Delivery),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/hold",
        Operator,
        E::DeliveryCommand("hold"),
    ),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/schedule",
        Operator,
        E::DeliveryCommand("schedule"),
    ),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/resend",
        Operator,
        E::DeliveryCommand("resend"),
    ),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/convert-to-sms",
        Operator,
        E::DeliveryCommand("convert-to-sms"),
    ),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/confirm",
        Operator,
        E::DeliveryCommand("confirm"),
    ),
    route(
        "POST",
        "/cycles/{cycle}/deliveries/{customer}/force-send",
        Administrator,
        E::DeliveryCommand("force-send"),
    ),
    route("GET", "/commands/{command_id}", Viewer, E::Command),
    route("GET", "/audit", Viewer, E::Audit),
    route("GET", "/templates", Viewer, E::Templates),
    route("GET", "/templates/{version}/preview", Viewer, E::Preview),
    route("POST", "/templates/{version}/activate", Administrator, E::Activate),
    route("GET", "/settings", Viewer, E::Settings),
    route("GET", "/settings/{name}", Viewer, E::Setting),
    route("PUT", "/settings/{name}", Administrator, E::PutSetting),
    route("GET", "/queues", Viewer, E::Queues),
    route("GET", "/queues/{queue}", Viewer, E::Queue),
    route("POST", "/queues/{queue}/redrive", Administrator, E::Redrive),
    route("GET", "/roles", Viewer, E::Roles),
    route("PUT", "/roles/{principal+}", Administrator, E::SetRole),
    route("PUT", "/customers/{customer}/preferences", Operator, E::Preferences),
    route("GET", "/suppressions", Viewer, E::Suppressions),
    route("POST", "/suppressions", Operator, E::Suppress),
    route("DELETE", "/suppressions/{hash}", Operator, E::Unsuppress),
    route(
        "GET",
        "/cycles/{cycle}/bills/{customer}/corrections",
        Viewer,
        E::Corrections,
    ),
    route(
        "POST",
        "/cycles/{cycle}/bills/{customer}/corrections",
        Administrator,
        E::Correct,
    ),
];

/// The values a request's path gives a route's `{name}`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value of `{name}` (empty when the pattern has none).
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// What the table holds for a request.
#[derive(Debug)]
pub enum Found {
    Route(&'static Route, Params),
    /// The path is a route's, not with this method.
    WrongMethod,
    Nothing,
}

/// `segments` (the path's, without empty ones) against a pattern: its params, or `None`.
fn matches(pattern: &'static str, segments: &[&str]) -> Option<Params> {
    let parts: Vec<&'static str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut params = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(rest) if rest.ends_with('+') => {
                if i != parts.len() - 1 || segments.len() <= i {
                    return None;
                }
                params.push((rest.trim_end_matches('+'), segments[i..].join("/")));
                return Some(Params(params));
            }
            Some(name) => params.push((name, (*segments.get(i)?).to_owned())),
            None if segments.get(i) == Some(part) => {}
            None => return None,
        }
    }
    (segments.len() == parts.len()).then_some(Params(params))
}

/// The route a request is for.
pub fn find(method: &str, segments: &[&str]) -> Found {
    let mut path_known = false;
    for r in ROUTES {
        if let Some(params) = matches(r.pattern, segments) {
            if r.method == method {
                return Found::Route(r, params);
            }
            path_known = true;
        }
    }
    if path_known { Found::WrongMethod } else { Found::Nothing }
}
