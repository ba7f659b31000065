//! The main job end to end: `local-run month` for a small population, the
//! provider latency compressed, against an emulator of its own, as on a fresh
//! machine. The run must reconcile and its report must say so.

use std::process::Command;

use serde_json::Value;

fn number(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in month.json"))
}

#[test]
fn a_month_of_500_customers_reconciles_with_no_duplicate_and_no_forbidden_send() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_local-run"))
        .args([
            "month",
            "--customers",
            "500",
            "--shard-size",
            "125",
            "--provider-latency-ms",
            "20",
        ])
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "error")
        // Its own emulator, as the main job starts one on a fresh machine: the suite's shared
        // emulator is one Python process, about one core, and this run keeps it busy for
        // minutes; a second process puts the other core to work.
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "local-run month failed ({:?}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );

    let report: Value = serde_json::from_slice(&std::fs::read(out.path().join("month.json")).unwrap()).unwrap();
    assert_eq!(report["ok"], Value::Bool(true), "{}", report["problems"]);
    let o = &report["outcome"];
    let bills = number(o, "bills");
    assert!(
        (490.0..=500.0).contains(&bills),
        "about 1% of customers have nothing to bill: {bills}"
    );
    let (email, sms, dead) = (number(o, "sent_email"), number(o, "sent_sms"), number(o, "dead"));
    assert_eq!(email + sms + dead, bills, "every bill ends once: {o}");
    assert_eq!(number(o, "waiting"), 0.0);
    assert!(email > 0.0 && sms > 0.0, "both channels carry invoices: {o}");
    // A bounced email's invoice went on by SMS: one email and one SMS accepted for it.
    let routed = number(o, "routed_to_sms");
    assert_eq!(
        number(o, "routed_sent"),
        routed,
        "every bounced email's SMS went out: {o}"
    );
    assert_eq!(
        number(o, "accepted_sends"),
        email + sms + routed,
        "the providers accepted exactly the sends: {o}"
    );
    // The mock's simulated evidence (2 % permanent bounces by default) went through the
    // delivery-events function: every accepted message has its event, every bounce its SMS.
    let handled = &report["evidence"]["handled"];
    assert_eq!(number(handled, "records"), number(o, "accepted_sends"), "{handled}");
    assert!(routed >= 1.0, "about 2 % of ~400 emails bounced: {o}");
    assert_eq!(number(&handled["counts"], "EvidenceFallbacks"), routed, "{handled}");
    let lifecycle = &o["lifecycle"];
    let counted = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    assert_eq!(
        counted(lifecycle, "email DELIVERED") + counted(lifecycle, "sms DELIVERED"),
        email + sms - counted(&handled["counts"], "TransientBounces"),
        "every sent delivery's receipt is on it, but for the SMS the carrier could not reach: {lifecycle} {handled}"
    );
    assert_eq!(number(o, "duplicates"), 0.0);
    assert_eq!(number(o, "forbidden_slot_sends"), 0.0);

    // Every slot of December, and the sends per slot add up to the sends.
    let slots = report["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 31 * 12);
    let per_slot: f64 = slots
        .iter()
        .map(|s| number(s, "sent_email") + number(s, "sent_sms"))
        .sum();
    assert_eq!(per_slot, email + sms);
    assert!(
        slots
            .iter()
            .filter(|s| !s["open"].as_bool().unwrap())
            .all(|s| number(s, "sent_email") + number(s, "sent_sms") == 0.0),
        "nothing goes out in a slot the quiet window closes"
    );

    // A cost report with every line priced, and the message fees apart.
    let cost = &report["cost"];
    let lines = cost["aws"].as_array().unwrap();
    assert!(lines.len() >= 8, "{cost}");
    for l in lines {
        let usd = number(l, "usd_per_million_invoices");
        assert!(usd.is_finite() && usd >= 0.0, "{l}");
    }
    for service in ["DynamoDB", "S3", "SQS", "Lambda", "Step Functions"] {
        let priced: f64 = lines
            .iter()
            .filter(|l| l["service"] == service)
            .map(|l| number(l, "usd_per_million_invoices"))
            .sum();
        assert!(priced > 0.0, "{service} costs something: {cost}");
    }
    let total = number(cost, "aws_usd_per_million_invoices");
    assert!(total > 1.0 && total < 1000.0, "{total}");
    assert_eq!(cost["message_fees"][0]["service"], "SES");
    assert!(number(&report, "requests_per_invoice") > 1.0);

    // Phases with their throughput, the slowest shard of each shard function.
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["generate", "provision", "load", "settle + render", "dispatch", "send"]
    );
    let slowest = report["slowest_shards"].as_array().unwrap();
    assert_eq!(slowest.len(), 2, "{slowest:?}");
    assert!(slowest.iter().all(|s| number(s, "shard") < 4.0));

    // The page and the charts.
    let html = std::fs::read_to_string(out.path().join("month.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("Reconciled"));
    let sends = std::fs::read_to_string(out.path().join("sends.svg")).unwrap();
    assert!(sends.matches("<rect x=").count() > 2, "bars besides the legend");
    assert!(stdout.contains("per 1,000,000 invoices"), "{stdout}");
}
