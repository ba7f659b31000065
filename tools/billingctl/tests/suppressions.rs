//! `billingctl suppressions list|add|remove` against the admin API served locally over a stack
//! in the emulator: the address read from standard input, answers naming the hash only, the
//! change audited by the API.

use std::process::Stdio;

use domain::SlotSet;
use domain::pii::{Field, Keyring};
use local_run::seed::seed_queued;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// billingctl as the stack's bootstrap administrator, `input` on its standard input.
async fn billingctl(url: &str, args: &[&str], input: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_billingctl"))
        .args(args)
        .env("BILLING_ADMIN_URL", url)
        .env("AWS_ACCESS_KEY_ID", "OPERATORKEY1")
        .env("AWS_SECRET_ACCESS_KEY", "not-checked-locally")
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_are_added_from_standard_input_listed_and_removed() {
    let stack = local_aws::fresh_stack("billingctl-suppress").await.unwrap();
    let seeded = seed_queued(&stack.config, &stack.resources, 3, 3, 0, SlotSet::EMPTY)
        .await
        .unwrap();
    let env = local_run::settle::local_function_env(&stack.resources, "AdminApiFunction");
    let deps = admin_api::Deps::load(&stack.config, &env).await.unwrap();
    let addr = admin_local::start_with(deps, 0, admin_local::Callers::default())
        .await
        .unwrap();
    let url = format!("http://{addr}/");
    let address = "blocked.person@example.org";
    let hash = Keyring::dev().lookup_hash(Field::Email, address);

    let add = [
        "suppressions",
        "add",
        "--email-stdin",
        "--reason",
        "the customer asked",
        "--command-id",
        "cli-s-1",
    ];
    let r = billingctl(&url, &add, &format!("{address}\n")).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&hash) && !r.stdout.contains("blocked.person"),
        "{}",
        r.stdout
    );
    // Again under the same id: the first answer.
    let r = billingctl(&url, &add, &format!("{address}\n")).await;
    assert!(r.stdout.starts_with("already added"), "{}", r.stdout);
    // A customer's current email, by id.
    let customer = seeded.deliveries[1].0.rsplit('#').next().unwrap().to_owned();
    let r = billingctl(
        &url,
        &[
            "--json",
            "suppressions",
            "add",
            "--customer",
            &customer,
            "--reason",
            "bounced before",
        ],
        "",
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["contact_hash"],
        Keyring::dev().lookup_hash(Field::Email, &seeded.emails[1])
    );

    let r = billingctl(&url, &["suppressions", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("HASH") && r.stdout.contains(&hash), "{}", r.stdout);
    assert!(
        r.stdout.contains("operator") && r.stdout.contains("cli-s-1"),
        "{}",
        r.stdout
    );

    let r = billingctl(&url, &["suppressions", "remove", &hash, "--reason", "works again"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("removed"), "{}", r.stdout);
    let r = billingctl(&url, &["--json", "suppressions", "list"], "").await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["suppressions"].as_array().unwrap().len(), 1);

    // Usage errors: no target, and an empty standard input.
    let r = billingctl(&url, &["suppressions", "add", "--reason", "r"], "").await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = billingctl(&url, &["suppressions", "add", "--email-stdin", "--reason", "r"], "").await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--email-stdin"), "{}", r.stderr);
    for out in [&r.stdout, &r.stderr] {
        assert!(!out.contains("blocked.person"));
    }
}
