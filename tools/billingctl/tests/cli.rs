//! `billingctl` against the admin API served locally over a stack in the emulator: every
//! command, tables and `--json`, and the exit codes scripts rely on.

use chrono::{Duration, Utc};
use domain::SlotSet;
use local_aws::Stack;
use local_run::seed::{Seeded, seed_queued};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The access key the local server names a viewer's session by (any other key is a session
/// of the stack's bootstrap administrator role).
const VIEWER_KEY: &str = "VIEWERKEY1";
const VIEWER: &str = "arn:aws:sts::123456789012:assumed-role/billing-viewer/park";

async fn billingctl(url: &str, args: &[&str]) -> Run {
    billingctl_as("OPERATORKEY1", url, args).await
}

/// billingctl signing with the access key `key`.
async fn billingctl_as(key: &str, url: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_billingctl"))
        .args(args)
        .env("BILLING_ADMIN_URL", url)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", "not-checked-locally")
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh stack named `name` with `n` queued deliveries (`shard_size` a shard, every
/// `sms_every`-th by SMS), and the admin API served over it locally at the returned URL.
async fn serve(name: &str, n: u32, shard_size: u32, sms_every: u32) -> (Stack, Seeded, String) {
    let stack = local_aws::fresh_stack(name).await.unwrap();
    let seeded = seed_queued(
        &stack.config,
        &stack.resources,
        n,
        shard_size,
        sms_every,
        SlotSet::EMPTY,
    )
    .await
    .unwrap();
    let env = local_run::settle::local_function_env(&stack.resources, "AdminApiFunction");
    let deps = admin_api::Deps::load(&stack.config, &env).await.unwrap();
    let callers = admin_local::Callers::default().with(VIEWER_KEY, VIEWER);
    let addr = admin_local::start_with(deps, 0, callers).await.unwrap();
    (stack, seeded, format!("http://{addr}/"))
}

/// The arguments as owned strings, with `--json` in front.
fn json(mut args: Vec<String>) -> Vec<String> {
    args.insert(0, "--json".to_owned());
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_with_tables_json_and_exit_codes() {
    let (stack, seeded, url) = serve("billingctl", 6, 3, 3).await;
    let run = |args: &'static [&'static str]| billingctl(&url, args);
    let no_leak = |r: &Run| {
        for secret in seeded.emails.iter().chain(&seeded.phones) {
            assert!(!r.stdout.contains(secret.as_str()) && !r.stderr.contains(secret.as_str()));
        }
    };

    // Reads: tables, and --json for scripts.
    let r = run(&["cycle", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("SETTLED"), "{}", r.stdout);
    let r = run(&["--json", "cycle", "2026-11"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "SETTLED");
    let r = run(&["funnel", "2026-11"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("QUEUED") && r.stdout.contains("6 deliveries"),
        "{}",
        r.stdout
    );
    let r = run(&["failures", "2026-11", "--all"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("SUBJECT"), "{}", r.stdout);

    let (id, _) = seeded.deliveries[0].clone();
    let customer = id.rsplit('#').next().unwrap().to_owned();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let call = |a: Vec<String>| {
        let url = url.clone();
        async move {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            billingctl(&url, &refs).await
        }
    };
    // `<verb> 2026-11 <customer>`, then the options.
    let on = |verb: &str, opts: &[&str]| {
        let mut a = args(&[verb, "2026-11", &customer]);
        a.extend(args(opts));
        a
    };
    let r = call(on("delivery", &[])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("QUEUED") && r.stdout.contains('*'), "{}", r.stdout);
    no_leak(&r);

    // Errors: a code per kind, the API's reason on stderr.
    for (a, code, reason) in [
        (args(&["cycle", "2031-01"]), 3, "unknown-cycle"),
        (args(&["cycle", "2026-13"]), 5, "invalid-cycle"),
        (args(&["delivery", "2026-11", "C9999999"]), 3, "unknown-customer"),
        (args(&["audit", "yesterday"]), 5, "invalid-day"),
    ] {
        let r = call(a.clone()).await;
        assert_eq!(r.code, code, "{a:?}: {}", r.stderr);
        assert!(r.stderr.contains(reason), "{a:?}: {}", r.stderr);
    }
    let r = call(args(&["cycle"])).await;
    assert_eq!(r.code, 2, "usage");
    let r = billingctl("http://127.0.0.1:9/", &["cycle", "2026-11"]).await;
    assert_eq!(r.code, 1, "nothing listens: {}", r.stderr);

    // Commands: refused in the wrong state, applied once, replayed, audited.
    let at = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let schedule = |cmd: &str, at: &str| {
        on(
            "schedule",
            &["--at", at, "--reason", "customer asked", "--command-id", cmd],
        )
    };
    let r = call(schedule("s-queued", &at)).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("wrong-state"));

    local_run::seed::make_ready(&stack.config, &stack.resources, &id)
        .await
        .unwrap();
    let r = call(schedule("s-1", &at)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("schedule applied (command id s-1)"), "{}", r.stdout);
    let r = call(schedule("s-1", &at)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("already applied"), "{}", r.stdout);
    let later = (Utc::now() + Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let r = call(schedule("s-1", &later)).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("command-id-reused"));
    // Without --command-id, one is made and printed.
    let r = call(json(on("schedule", &["--at", &later, "--reason", "moved again"]))).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let made: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(made["command_id"].as_str().unwrap().starts_with("cli-"));

    let r = call(args(&["--json", "command", "s-1"])).await;
    let c: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        c["who"],
        "arn:aws:sts::123456789012:assumed-role/billing-admin/OPERATORKEY1"
    );
    assert_eq!(c["why"], "customer asked");
    let day = Utc::now().format("%Y-%m-%d").to_string();
    let r = call(args(&["audit", &day])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("s-1") && r.stdout.contains("customer asked"),
        "{}",
        r.stdout
    );
    let r = call(on("resend", &["--reason", "x", "--command-id", "r-1"])).await;
    assert_eq!(r.code, 4, "a READY delivery is on its way: {}", r.stderr);
    let r = call(on("resend", &["--reason", "x", "--channel", "fax"])).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = call(on("convert-to-sms", &["--reason", "email bounces"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("convert-to-sms applied"), "{}", r.stdout);
    let r = call(json(on("force-send", &["--reason", "dispute"]))).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let forced: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(forced["quiet_window"], "still applies");
    let hold = on("hold", &["--reason", "bill disputed", "--command-id", "h-1"]);
    let r = call(hold.clone()).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("is HELD (bill disputed)"), "{}", r.stdout);
    let r = call(on("hold", &["--reason", "again"])).await;
    assert_eq!(r.code, 4, "held already: {}", r.stderr);
    let r = call(hold).await;
    assert!(
        r.stdout.contains("already applied under command id h-1"),
        "{}",
        r.stdout
    );
    let r = call(on("delivery", &[])).await;
    assert!(r.stdout.contains("bill disputed"), "{}", r.stdout);

    // Confirm is for an UNCONFIRMED delivery only; the funnel lists that state.
    let r = call(on(
        "confirm",
        &["--reason", "SES console shows it delivered", "--command-id", "k-1"],
    ))
    .await;
    assert_eq!(r.code, 4, "a held delivery is not unconfirmed: {}", r.stderr);
    assert!(
        r.stderr.contains("wrong-state") && r.stderr.contains("UNCONFIRMED"),
        "{}",
        r.stderr
    );
    let r = run(&["funnel", "2026-11"]).await;
    assert!(r.stdout.contains("UNCONFIRMED"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_templates_and_redrive_commands() {
    let (stack, _, url) = serve("billingctl-ops", 4, 2, 2).await;
    let run = |args: &'static [&'static str]| billingctl(&url, args);

    // Settings and the channel policy.
    let r = run(&["settings"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("SETTING") && r.stdout.contains("channel-policy") && r.stdout.contains("deployment"),
        "{}",
        r.stdout
    );
    const SET_SMS: &[&str] = &[
        "policy",
        "set",
        "sms",
        "--reason",
        "email provider outage",
        "--command-id",
        "p-1",
    ];
    let r = run(&["policy", "set", "fax", "--reason", "x"]).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("invalid-value"), "{}", r.stderr);
    let r = run(SET_SMS).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("channel-policy = sms (was email,sms), revision 1"),
        "{}",
        r.stdout
    );
    let r = run(SET_SMS).await;
    assert!(r.stdout.contains("already set under command id p-1"), "{}", r.stdout);
    let r = run(&["policy", "set", "email", "--reason", "x", "--command-id", "p-1"]).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = run(&["--json", "policy"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (&v["value"], &v["source"]),
        (&Value::from("sms"), &Value::from("setting"))
    );

    // Templates: list, preview (the HTML into a file), activate.
    let r = run(&["templates"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("v1") && r.stdout.contains("active (deployment)"),
        "{}",
        r.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("v1.html");
    let html_arg = html.to_str().unwrap().to_owned();
    let r = billingctl(&url, &["templates", "preview", "v1", "--html", &html_arg]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("subject:") && r.stdout.contains("text message:"),
        "{}",
        r.stdout
    );
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
    let r = run(&["templates", "preview", "v7"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = run(&["templates", "activate", "v7", "--reason", "x"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("unknown-template-version"), "{}", r.stderr);
    let r = run(&["templates", "activate", "v1", "--reason", "spring layout"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("template-version = v1"), "{}", r.stdout);
    let r = run(&["templates"]).await;
    assert!(r.stdout.contains("active (setting)"), "{}", r.stdout);

    // Queues and redrive. The email queue's messages, received ten times unanswered, go to
    // the delivery DLQ; the redrive moves them back. An empty queue is refused, saying why.
    local_run::seed::dead_letter_email(&stack.config, &stack.resources)
        .await
        .unwrap();
    let r = run(&["queues"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("delivery-dlq") && r.stdout.contains("dispatch-dlq"),
        "{}",
        r.stdout
    );
    let r = run(&["redrive", "dispatch-dlq", "--reason", "x"]).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("nothing-to-redrive"), "{}", r.stderr);
    const REDRIVE: &[&str] = &[
        "redrive",
        "delivery-dlq",
        "--rate",
        "5",
        "--reason",
        "provider fixed",
        "--command-id",
        "rd-1",
    ];
    let r = run(REDRIVE).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("redrive started: 2 messages of delivery-dlq"),
        "{}",
        r.stdout
    );
    let r = run(REDRIVE).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("already started"), "{}", r.stdout);
    let r = run(&["redrive", "delivery-dlq", "--rate", "0", "--reason", "x"]).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = run(&["redrive", "nope", "--reason", "x"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_listed_and_set_and_a_refusal_says_which_role_it_needs() {
    let (_stack, seeded, url) = serve("billingctl-roles", 2, 2, 2).await;
    let customer = seeded.deliveries[0].0.rsplit('#').next().unwrap().to_owned();
    let viewer = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            billingctl_as(VIEWER_KEY, &url, &refs).await
        }
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();

    // No role yet: exit code 6, the API's reason and what to do about it.
    let r = viewer(owned(&["cycle", "2026-11"])).await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("403 forbidden")
            && r.stderr.contains("needs the viewer role")
            && r.stderr.contains("billingctl roles set"),
        "{}",
        r.stderr
    );

    // The administrator (the local default caller) grants it; the next request is served.
    let principal = "arn:aws:iam::123456789012:role/billing-viewer";
    let set = [
        "roles",
        "set",
        principal,
        "viewer",
        "--reason",
        "new analyst",
        "--command-id",
        "role-1",
    ];
    let r = billingctl(&url, &set).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("set (command id role-1)") && r.stdout.contains(&format!("{principal}: viewer (was none)")),
        "{}",
        r.stdout
    );
    let r = billingctl(&url, &set).await;
    assert!(r.stdout.contains("already set under command id role-1"), "{}", r.stdout);
    let r = viewer(owned(&["cycle", "2026-11"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = viewer(owned(&["roles"])).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(&format!("you: {principal} (viewer)"))
            && r.stdout.contains("arn:aws:iam::123456789012:role/billing-admin"),
        "{}",
        r.stdout
    );

    // A viewer's command: refused, saying which role it needs and which the caller has.
    let r = viewer(owned(&["hold", "2026-11", &customer, "--reason", "x"])).await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("needs the operator role") && r.stderr.contains("has the viewer role"),
        "{}",
        r.stderr
    );
    let r = viewer(owned(&["roles", "set", principal, "administrator", "--reason", "x"])).await;
    assert_eq!(r.code, 6, "a viewer cannot change roles: {}", r.stderr);
    let r = billingctl(&url, &["roles", "set", principal, "owner", "--reason", "x"]).await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = billingctl(
        &url,
        &[
            "roles",
            "set",
            "arn:aws:iam::123456789012:role/billing-admin",
            "viewer",
            "--reason",
            "x",
        ],
    )
    .await;
    assert_eq!(r.code, 4, "the bootstrap administrator stays one: {}", r.stderr);
}
