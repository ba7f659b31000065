//! docs/idle-cost.md and template.yaml agree: every resource the stack creates (as deployed, so
//! including what SAM generates: roles, function URLs, event source mappings, schedules, …) has
//! one row in the page's table and the table names nothing else; each row's fixed monthly cost is
//! the one infra/prices.json gives its kind (an alarm by its metrics, a dashboard, a secret, an
//! SQS event source's polling); a development stage (`Monitoring=none`, a shared link-keys
//! secret) leaves out exactly the rows marked "left out" and keeps only the fixed fees marked
//! "kept (needed)"; the same stage paused (`Activity=paused`) has no fixed fee at all; and every
//! `Ref`, `GetAtt` and `Sub` of each stage names a resource that stage has. The totals per stage
//! the page states are the ones the table adds up to; the test prints them.
//!
//! The template is expanded by the SAM translator of the project's tools (`.venv`, installed by
//! scripts/setup.sh), the code `sam deploy` runs; no emulator is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Expands template.yaml with the SAM translator and prints the CloudFormation template as JSON.
/// Local `CodeUri`/`DefinitionUri` folders become S3 locations first, as `sam validate` does.
const EXPAND: &str = r#"
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
for resource in template.get("Resources", {}).values():
    properties = resource.get("Properties", {})
    for key in ("CodeUri", "DefinitionUri"):
        if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = "s3://bucket/" + properties[key]
json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, default=str)
"#;

/// Kinds of resource with no fixed monthly fee: an idle one costs nothing (what it costs when
/// used is in the page). A kind that is neither here nor priced in [`fixed_micros`] fails the
/// test until the page and the test say what it costs idle.
const FREE_WHEN_IDLE: &[&str] = &[
    "AWS::DynamoDB::Table",
    "AWS::Events::Rule",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Role",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Url",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SES::ConfigurationSet",
    "AWS::SES::ConfigurationSetEventDestination",
    "AWS::SMSVOICE::ConfigurationSet",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::Scheduler::Schedule",
    "AWS::StepFunctions::StateMachine",
];

/// The development stage's parameters on top of the defaults (samconfig.toml's `dev`).
const DEVELOPMENT: &[(&str, &str)] = &[("Monitoring", "none"), ("LinkKeysSecretName", "billing-dev-link-keys")];
/// The development stage while nobody uses it (samconfig.toml's `dev-paused`).
const DEVELOPMENT_PAUSED: &[(&str, &str)] = &[
    ("Monitoring", "none"),
    ("LinkKeysSecretName", "billing-dev-link-keys"),
    ("Activity", "paused"),
];
/// Production: the defaults, with an address for the alarms (so that its subscription exists).
const PRODUCTION: &[(&str, &str)] = &[("AlarmEmail", "alarms@example.com")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// template.yaml as CloudFormation receives it after the SAM transform.
fn expanded_template() -> Value {
    let python = root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh (it installs the SAM CLI and its translator)",
        python.display()
    );
    let out = Command::new(&python)
        .arg("-c")
        .arg(EXPAND)
        .arg(root().join("template.yaml"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the SAM translator runs");
    assert!(
        out.status.success(),
        "the SAM translator refused template.yaml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the translator prints JSON")
}

fn prices() -> Value {
    let text = std::fs::read_to_string(root().join("infra/prices.json")).expect("infra/prices.json");
    serde_json::from_str(&text).expect("infra/prices.json parses")
}

/// A price from infra/prices.json in micro-dollars (prices have at most six decimals here).
fn price_micros(prices: &Value, section: &str, key: &str) -> i64 {
    let v = prices[section][key]
        .as_f64()
        .unwrap_or_else(|| panic!("infra/prices.json has no {section}.{key}"));
    (v * 1e6).round() as i64
}

fn number(prices: &Value, section: &str, key: &str) -> i64 {
    prices[section][key]
        .as_i64()
        .unwrap_or_else(|| panic!("infra/prices.json has no whole number {section}.{key}"))
}

/// One row of the page's resource table.
#[derive(Debug)]
struct Row {
    kind: String,
    /// Fixed monthly cost in cents, as the page states it.
    cents: i64,
    development: Development,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Development {
    /// In a development stage exactly when in production.
    Kept,
    /// A fixed fee a development stage cannot do without.
    KeptNeeded,
    /// Not in a development stage.
    LeftOut,
}

/// `$1.23` → 123.
fn cents(cell: &str) -> Option<i64> {
    let (dollars, cents) = cell.strip_prefix('$')?.split_once('.')?;
    (cents.len() == 2).then_some(())?;
    Some(dollars.parse::<i64>().ok()? * 100 + cents.parse::<i64>().ok()?)
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// The resource rows (first cell a backquoted logical id) and the stage totals (first cell
/// `Production` or `Development`, last cell the amount) of docs/idle-cost.md.
fn page() -> (BTreeMap<String, Row>, BTreeMap<String, i64>) {
    let text = std::fs::read_to_string(root().join("docs/idle-cost.md")).expect("docs/idle-cost.md");
    let mut rows = BTreeMap::new();
    let mut totals = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('|')) {
        let c = cells(line);
        if let Some(id) = c[0].strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
            assert!(c.len() >= 4, "docs/idle-cost.md: the row of {id} has too few cells");
            let development = match c[3].as_str() {
                "kept" => Development::Kept,
                "kept (needed)" => Development::KeptNeeded,
                "left out" => Development::LeftOut,
                other => panic!(
                    "docs/idle-cost.md: {id}: development stage {other:?} is not kept, kept (needed) or left out"
                ),
            };
            let row = Row {
                kind: c[1].trim_matches('`').to_string(),
                cents: cents(&c[2]).unwrap_or_else(|| panic!("docs/idle-cost.md: {id}: {:?} is not $d.cc", c[2])),
                development,
            };
            assert!(
                rows.insert(id.to_string(), row).is_none(),
                "docs/idle-cost.md lists {id} twice"
            );
        } else if ["Production", "Development", "Development, paused"].contains(&c[0].as_str()) {
            let amount = c.last().and_then(|a| cents(a.trim_matches('*')));
            totals.insert(
                c[0].clone(),
                amount.unwrap_or_else(|| panic!("docs/idle-cost.md: the {} total is not $d.cc", c[0])),
            );
        }
    }
    (rows, totals)
}

/// Metrics an alarm is billed for: one for a single metric, one per metric of a metric-math
/// alarm. Anomaly detection (three metrics each) and high-resolution periods (three times the
/// price) are refused until the test prices them.
fn alarm_metrics(id: &str, properties: &Value) -> i64 {
    let text = properties.to_string();
    assert!(
        !text.contains("ANOMALY_DETECTION_BAND"),
        "{id}: price anomaly detection alarms in this test"
    );
    let periods: Vec<i64> = if properties.get("MetricName").is_some() {
        vec![properties["Period"].as_i64().unwrap_or(60)]
    } else {
        properties["Metrics"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m.get("MetricStat"))
                    .map(|s| s["Period"].as_i64().unwrap_or(60))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!periods.is_empty(), "{id}: an alarm with no metric");
    assert!(
        periods.iter().all(|p| *p >= 60),
        "{id}: price high-resolution alarms in this test"
    );
    periods.len() as i64
}

/// The fixed monthly cost of one resource of the expanded template, in micro-dollars.
/// A resource's fixed monthly cost in `stage` (an event source the stage disables polls
/// nothing).
fn fixed_micros(
    id: &str,
    resource: &Value,
    resources: &serde_json::Map<String, Value>,
    prices: &Value,
    stage: &Stage,
) -> i64 {
    let kind = resource["Type"].as_str().unwrap_or_default();
    let properties = &resource["Properties"];
    match kind {
        "AWS::Lambda::EventSourceMapping" if !stage.enabled(&properties["Enabled"]) => 0,
        "AWS::CloudWatch::Alarm" => {
            alarm_metrics(id, properties) * price_micros(prices, "cloudwatch", "per_alarm_metric_month")
        }
        "AWS::CloudWatch::Dashboard" => price_micros(prices, "cloudwatch", "per_dashboard_month"),
        "AWS::SecretsManager::Secret" => price_micros(prices, "secrets_manager", "per_secret_month"),
        "AWS::Lambda::EventSourceMapping" => {
            assert!(
                properties.get("ProvisionedPollerConfig").is_none(),
                "{id}: provisioned pollers have an hourly fee: price them in this test"
            );
            let source = properties["EventSourceArn"]["Fn::GetAtt"][0]
                .as_str()
                .unwrap_or_default();
            let source_kind = resources
                .get(source)
                .and_then(|r| r["Type"].as_str())
                .unwrap_or_default();
            assert_eq!(
                source_kind, "AWS::SQS::Queue",
                "{id}: price a {source_kind:?} event source in this test"
            );
            // Long polls that return empty, all month, from each of the mapping's pollers.
            let polls = number(prices, "sqs", "idle_pollers_per_event_source") * 3600
                / number(prices, "sqs", "long_poll_seconds")
                * prices["hours_per_month"]
                    .as_i64()
                    .expect("infra/prices.json: hours_per_month");
            polls * price_micros(prices, "sqs", "per_million_requests") / 1_000_000
        }
        k if FREE_WHEN_IDLE.contains(&k) => 0,
        other => panic!("{id}: what does an idle {other} cost? Say it in docs/idle-cost.md and in this test"),
    }
}

/// Parameter values: the template's defaults with `overrides`.
fn parameters(template: &Value, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template["Parameters"]
        .as_object()
        .expect("Parameters")
        .iter()
        .map(|(k, p)| {
            let default = match &p["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            (k.clone(), default)
        })
        .collect();
    for (k, v) in overrides {
        assert!(values.contains_key(*k), "template.yaml has no parameter {k}");
        values.insert(k.to_string(), v.to_string());
    }
    values
}

/// The conditions of a stage and the resources and outputs it has.
struct Stage {
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl Stage {
    fn new(template: &Value, overrides: &[(&str, &str)]) -> Stage {
        let mut stage = Stage {
            parameters: parameters(template, overrides),
            conditions: BTreeMap::new(),
        };
        let conditions = template["Conditions"].as_object().cloned().unwrap_or_default();
        for name in conditions.keys() {
            stage.condition(name, &conditions, &mut Vec::new());
        }
        stage
    }

    fn condition(&mut self, name: &str, all: &serde_json::Map<String, Value>, seen: &mut Vec<String>) -> bool {
        if let Some(v) = self.conditions.get(name) {
            return *v;
        }
        assert!(!seen.iter().any(|s| s == name), "condition {name} refers to itself");
        seen.push(name.to_string());
        let v = self.truth(
            all.get(name).unwrap_or_else(|| panic!("no condition {name}")),
            all,
            seen,
        );
        seen.pop();
        self.conditions.insert(name.to_string(), v);
        v
    }

    fn truth(&mut self, v: &Value, all: &serde_json::Map<String, Value>, seen: &mut Vec<String>) -> bool {
        let (f, args) = v
            .as_object()
            .and_then(|o| o.iter().next())
            .unwrap_or_else(|| panic!("not a condition: {v}"));
        match f.as_str() {
            "Fn::Equals" => self.scalar(&args[0]) == self.scalar(&args[1]),
            "Fn::Not" => !self.truth(&args[0], all, seen),
            "Fn::And" => args.as_array().unwrap().iter().all(|a| self.truth(a, all, seen)),
            "Fn::Or" => args.as_array().unwrap().iter().any(|a| self.truth(a, all, seen)),
            "Condition" => self.condition(args.as_str().unwrap(), all, seen),
            other => panic!("condition function {other} is not known to this test"),
        }
    }

    fn scalar(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Object(o) if o.contains_key("Ref") => {
                let name = o["Ref"].as_str().unwrap();
                self.parameters
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("a condition compares {name}"))
            }
            other => other.to_string(),
        }
    }

    /// A property as the stage resolves it: the branch of each `Fn::If` the stage takes.
    fn value<'v>(&self, v: &'v Value) -> &'v Value {
        match v {
            Value::Object(o) if o.len() == 1 && o.contains_key("Fn::If") => {
                let args = o["Fn::If"].as_array().expect("Fn::If takes three arguments");
                self.value(if self.conditions[args[0].as_str().unwrap()] {
                    &args[1]
                } else {
                    &args[2]
                })
            }
            other => other,
        }
    }

    /// An `Enabled` property as the stage resolves it (`true` when absent).
    fn enabled(&self, v: &Value) -> bool {
        match self.value(v) {
            Value::Null => true,
            Value::Bool(b) => *b,
            other => panic!("an Enabled of {other} is not known to this test"),
        }
    }

    /// Whether a resource or output with this declaration is in the stage.
    fn has(&self, decl: &Value) -> bool {
        decl.get("Condition")
            .and_then(Value::as_str)
            .is_none_or(|c| self.conditions[c])
    }
}

/// Every resource `v` refers to (`Ref`, `Fn::GetAtt`, `${…}` of `Fn::Sub`, `DependsOn`),
/// following only the branch of each `Fn::If` the stage takes.
fn references(stage: &Stage, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::If") => {
            let args = o["Fn::If"].as_array().expect("Fn::If takes three arguments");
            let branch = if stage.conditions[args[0].as_str().unwrap()] {
                &args[1]
            } else {
                &args[2]
            };
            references(stage, branch, out);
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("Ref") => {
            if let Some(name) = o["Ref"].as_str() {
                out.insert(name.to_string());
            }
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::GetAtt") => {
            let target = match &o["Fn::GetAtt"] {
                Value::Array(a) => a[0].as_str().unwrap_or_default().to_string(),
                Value::String(s) => s.split('.').next().unwrap_or_default().to_string(),
                other => panic!("GetAtt of {other}"),
            };
            out.insert(target);
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::Sub") => {
            let (text, vars) = match &o["Fn::Sub"] {
                Value::String(s) => (s.as_str(), None),
                Value::Array(a) => (a[0].as_str().unwrap_or_default(), a.get(1)),
                other => panic!("Sub of {other}"),
            };
            let local: BTreeSet<&str> = vars
                .and_then(Value::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                rest = &rest[start + 2..];
                let end = rest.find('}').expect("an unclosed ${ in a Sub");
                let name = rest[..end].split('.').next().unwrap_or_default();
                if !name.starts_with('!') && !local.contains(name) {
                    out.insert(name.to_string());
                }
                rest = &rest[end..];
            }
            if let Some(vars) = vars {
                references(stage, vars, out);
            }
        }
        Value::Object(o) => {
            for (k, child) in o {
                if k == "DependsOn" {
                    match child {
                        Value::String(s) => {
                            out.insert(s.clone());
                        }
                        Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
                        _ => {}
                    }
                } else {
                    references(stage, child, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(stage, x, out)),
        _ => {}
    }
}

/// What each resource and output of `stage` refers to that the stage does not have.
fn dangling(template: &Value, stage: &Stage) -> Vec<String> {
    let resources = template["Resources"].as_object().unwrap();
    let present: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| stage.has(r))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut wrong = Vec::new();
    let outputs = template["Outputs"].as_object().cloned().unwrap_or_default();
    let declared = resources
        .iter()
        .map(|(k, r)| (format!("Resources.{k}"), r))
        .chain(outputs.iter().map(|(k, o)| (format!("Outputs.{k}"), o)));
    for (path, decl) in declared.filter(|(_, d)| stage.has(d)) {
        let mut refs = BTreeSet::new();
        references(stage, decl, &mut refs);
        for r in refs {
            let known = present.contains(r.as_str()) || stage.parameters.contains_key(&r) || r.starts_with("AWS::");
            if !known {
                wrong.push(format!("{path} refers to {r}"));
            }
        }
    }
    wrong
}

fn dollars(micros: i64) -> String {
    let cents = (micros + 5_000) / 10_000;
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[test]
fn the_idle_cost_table_lists_every_resource_with_its_fixed_cost_and_a_development_stage_leaves_the_fixed_fees_out() {
    let template = expanded_template();
    let prices = prices();
    let (rows, totals) = page();
    let resources = template["Resources"].as_object().expect("Resources");
    let production = Stage::new(&template, PRODUCTION);
    let development = Stage::new(&template, DEVELOPMENT);
    let paused = Stage::new(&template, DEVELOPMENT_PAUSED);

    let mut wrong = Vec::new();
    for id in resources.keys().filter(|id| !rows.contains_key(*id)) {
        wrong.push(format!(
            "{id} ({}) is in the template, not in the table",
            resources[id]["Type"]
        ));
    }
    for id in rows.keys().filter(|id| !resources.contains_key(*id)) {
        wrong.push(format!("{id} is in the table, not in the template"));
    }

    let (mut production_micros, mut development_micros, mut paused_micros) = (0, 0, 0);
    for (id, resource) in resources {
        if paused.has(resource) {
            // Paused, nothing runs on its own: no event source polls, no schedule fires.
            let properties = &resource["Properties"];
            let runs = match resource["Type"].as_str().unwrap_or_default() {
                "AWS::Lambda::EventSourceMapping" => paused.enabled(&properties["Enabled"]),
                "AWS::Scheduler::Schedule" => paused.value(&properties["State"]).as_str() != Some("DISABLED"),
                _ => false,
            };
            if runs {
                wrong.push(format!("{id}: still runs in a paused development stage"));
            }
            let micros = fixed_micros(id, resource, resources, &prices, &paused);
            paused_micros += micros;
            if micros > 0 {
                wrong.push(format!(
                    "{id}: a fixed {} a month in a paused development stage",
                    dollars(micros)
                ));
            }
        }
        let Some(row) = rows.get(id) else { continue };
        let kind = resource["Type"].as_str().unwrap_or_default();
        if row.kind != kind {
            wrong.push(format!("{id}: the table says {}, the template makes {kind}", row.kind));
        }
        let micros = fixed_micros(id, resource, resources, &prices, &production);
        if (micros + 5_000) / 10_000 != row.cents {
            wrong.push(format!(
                "{id}: the table says ${}.{:02} a month, the prices give {}",
                row.cents / 100,
                row.cents % 100,
                dollars(micros)
            ));
        }
        let (in_production, in_development) = (production.has(resource), development.has(resource));
        production_micros += if in_production { micros } else { 0 };
        development_micros += if in_development { micros } else { 0 };
        match row.development {
            Development::LeftOut if in_development || !in_production => wrong.push(format!(
                "{id}: marked left out, but in production {in_production}, in development {in_development}"
            )),
            Development::Kept | Development::KeptNeeded if in_development != in_production => wrong.push(format!(
                "{id}: marked kept, but in production {in_production}, in development {in_development}"
            )),
            _ => {}
        }
        // A fixed fee stays in a development stage only when the page says it is needed.
        if micros > 0 && in_development && row.development != Development::KeptNeeded {
            wrong.push(format!(
                "{id}: a fixed {} a month in a development stage: leave it out or mark it kept (needed)",
                dollars(micros)
            ));
        }
        if row.development == Development::KeptNeeded && micros == 0 {
            wrong.push(format!("{id}: marked kept (needed) but has no fixed fee"));
        }
    }

    for (stage, name) in [
        (&production, "production"),
        (&development, "development"),
        (&paused, "development, paused"),
    ] {
        wrong.extend(dangling(&template, stage).into_iter().map(|w| format!("{name}: {w}")));
    }

    for (name, micros) in [
        ("Production", production_micros),
        ("Development", development_micros),
        ("Development, paused", paused_micros),
    ] {
        let stated = totals.get(name).copied();
        let computed = (micros + 5_000) / 10_000;
        if stated != Some(computed) {
            wrong.push(format!(
                "docs/idle-cost.md states the {name} total as {stated:?} cents, the table adds up to {}",
                dollars(micros)
            ));
        }
    }
    println!(
        "idle cost a month ({} resources, us-east-1 list prices of {}): production {}, development {}, \
         development paused {}",
        resources.len(),
        prices["as_of"].as_str().unwrap_or("?"),
        dollars(production_micros),
        dollars(development_micros),
        dollars(paused_micros)
    );
    assert!(
        wrong.is_empty(),
        "docs/idle-cost.md and template.yaml disagree:\n{}",
        wrong.join("\n")
    );
    assert!(
        development_micros < production_micros,
        "a development stage costs no less than production"
    );
}
