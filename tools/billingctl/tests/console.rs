//! The operators' console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, through WebDriver), against a month settled on the local stack:
//! `admin-api-local` in front of it and two `billingctl console` processes, an
//! administrator's and a viewer's, run as an operator runs them.
//!
//! One scenario, in the order an operator lives it: the Month page shows the cycle and every
//! shard; a delivery the provider refused on both channels is DEAD with its failure record; the
//! Customer page finds it and shows its timeline; a resend from the Failures page, with a
//! reason, shows its audit record and goes out exactly once when the next slot's dispatch and
//! the senders run; the Funnel page follows the month's sends without a reload; the viewer
//! sees the action disabled and is refused by the admin API (403); and after all that the
//! browser holds no customer id in its address and nothing in its storage. The console
//! refuses a request without its session cookie and one for another host.
//!
//! `CONSOLE_SCREENSHOTS=DIR` also saves a PNG of each page at 1280×800 and the Customer page
//! at 390×844 (scripts/console-screenshots.sh).

#[allow(dead_code)]
#[path = "console/month.rs"]
mod month;
#[allow(dead_code)]
#[path = "console/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::dispatch::SlotRun;
use local_run::send::VirtualClock;
use month::{ADMIN_KEY, AdminApi, Console, LocalMonth, VIEWER, VIEWER_KEY, http};
use serde_json::{Value, json};
use webdriver::{Browser, Seen};

/// How long a page may take to show its data (the emulator answers one request at a time,
/// and other tests share it).
const PAGE: Duration = Duration::from_secs(30);
/// How long the Funnel page may take to show the month's sends.
const FUNNEL_CHANGE: Duration = Duration::from_secs(180);
/// The month: customers, in shards of this size.
const CUSTOMERS: u32 = 60;
const SHARD_SIZE: u32 = 20;

/// Waits until the page says it shows `page`'s data (`document.body.dataset.ready`).
async fn ready(b: &Browser, page: &str) -> webdriver::Result<()> {
    b.wait_for("body", &format!("the {page} page's data"), PAGE, |s| {
        s.attr("data-ready") == Some(page)
    })
    .await
    .map(drop)
}

/// Goes to `page` through its navigation link and waits for its data.
async fn open(b: &Browser, page: &str) -> webdriver::Result<()> {
    let link = b.find(&format!("nav a[href=\"#{page}\"]")).await?;
    b.click(&link).await?;
    ready(b, page).await
}

/// Searches `customer` on the Customer page; waits for its delivery's state to satisfy `ok`.
async fn search(b: &Browser, customer: &str, what: &str, ok: impl Fn(&Seen) -> bool) -> webdriver::Result<String> {
    let input = b.find("#customer-search").await?;
    b.clear(&input).await?;
    b.send_keys(&input, customer).await?;
    b.click(&b.find("#customer-search-button").await?).await?;
    let state = b.wait_for("#delivery-state", what, PAGE, ok).await?;
    Ok(b.attribute(&state, "data-state").await?.unwrap_or_default())
}

/// The `data-count` of the funnel's `state` element (0 when the page shows none).
async fn funnel_count(b: &Browser, state: &str) -> webdriver::Result<u64> {
    let v = b
        .execute(
            "const e = document.querySelector('#funnel-states [data-state=\"' + arguments[0] + '\"]');
             return e ? e.getAttribute('data-count') : null;",
            vec![json!(state)],
        )
        .await?;
    Ok(v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// What the browser keeps: its address, both storages, its cookies as scripts see them and
/// its IndexedDB databases.
async fn kept(b: &Browser) -> webdriver::Result<Value> {
    b.execute_async(
        "const done = arguments[arguments.length - 1];
         const dbs = indexedDB.databases ? indexedDB.databases() : Promise.resolve([]);
         dbs.then(d => done({href: location.href, local: localStorage.length,
             session: sessionStorage.length, cookie: document.cookie, idb: d.length}));",
        vec![],
    )
    .await
}

/// Runs slot after slot from `from` (at most a day of slots), draining the senders after each
/// that enqueued something, until `customer`'s delivery is sent: the run that sent it.
async fn send_until_sent(
    m: &LocalMonth,
    api: &AdminApi,
    clock: &VirtualClock,
    senders: &[local_run::send::Poller],
    from: SlotRun,
    customer: &str,
) -> SlotRun {
    let dispatch = m.dispatch().await.unwrap();
    let mut run = from;
    for _ in 0..12 {
        let report = local_run::dispatch::run_slot(&dispatch, run).await.unwrap();
        if report.enqueued_email + report.enqueued_sms > 0 {
            clock.set(run.start());
            let (_, drained) = local_run::send::drain(senders, 2, Duration::from_secs(120))
                .await
                .unwrap();
            assert!(drained, "the senders drained {run}");
            let (_, d) = api
                .call(
                    ADMIN_KEY,
                    "GET",
                    &format!("/cycles/{}/deliveries/{customer}", m.cycle),
                    None,
                )
                .await
                .unwrap();
            if d["state"].as_str().is_some_and(|s| s.starts_with("SENT_")) {
                return run;
            }
        }
        run = run.next();
    }
    panic!("no slot run of the day after {from} sent the resent delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_finds_a_dead_delivery_resends_it_once_and_watches_the_month_in_chromium() {
    // Before anything costly: the browser is there.
    for program in [webdriver::CHROMIUM, webdriver::CHROMEDRIVER] {
        assert!(
            std::path::Path::new(program).exists(),
            "{program} is missing: {}",
            webdriver::INSTALL_HINT
        );
    }
    let screenshots = std::env::var_os("CONSOLE_SCREENSHOTS").map(PathBuf::from);
    if let Some(dir) = &screenshots {
        std::fs::create_dir_all(dir).unwrap();
    }

    // 1. A month settled and rendered: every delivery READY.
    let m = LocalMonth::settled("console", CUSTOMERS, SHARD_SIZE, Duration::from_secs(480))
        .await
        .unwrap();
    let cycle = m.cycle.to_string();
    assert_eq!(m.shards, CUSTOMERS / SHARD_SIZE);

    // 2. The provider refuses every email and SMS of the month's first sending slot: those
    //    deliveries end DEAD and their dead letters become failure records.
    let clock = VirtualClock::at(chrono::Utc::now());
    let failing = m.senders(&clock, true).await.unwrap();
    let first = m.first_sending_slot(&clock, &failing).await.unwrap();
    let recorded = m.record_failures().await.unwrap();
    assert!(recorded >= 1, "a dead letter was recorded");
    assert!(
        m.accepted_sends().await.unwrap().is_empty(),
        "the provider accepted nothing"
    );

    let api = m.admin_api().await.unwrap();
    api.grant(VIEWER, "viewer").await.unwrap();
    let (status, failures) = api
        .call(ADMIN_KEY, "GET", &format!("/cycles/{cycle}/failures"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{failures}");
    let subject = failures["records"]
        .as_array()
        .and_then(|r| r.iter().find_map(|f| f["subject"].as_str()))
        .unwrap_or_else(|| panic!("a failure record: {failures}"))
        .to_owned();
    let (_, _, dead) = domain::delivery::parse_delivery_id(&subject).unwrap();
    let dead = dead.to_string();
    let (_, d) = api
        .call(ADMIN_KEY, "GET", &format!("/cycles/{cycle}/deliveries/{dead}"), None)
        .await
        .unwrap();
    assert_eq!(d["state"], "DEAD", "{d}");

    // 3. The consoles: the administrator's and the viewer's.
    let admin = Console::start(&api.url, m.cycle, ADMIN_KEY).await.unwrap();
    let viewer = Console::start(&api.url, m.cycle, VIEWER_KEY).await.unwrap();

    // Without the session cookie: 401; with it but for another host: 421; a command from
    // another origin: 403. The login sets an HttpOnly, SameSite=Strict cookie.
    let api_path = format!("{}/api/cycles/{cycle}", admin.origin);
    let host = |h: String| ("host", h);
    let r = http("GET", &api_path, &[host(format!("127.0.0.1:{}", admin.port))], None)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "console-session");
    let login = http("GET", &admin.login_url, &[], None).await.unwrap();
    assert_eq!(login.status, 303);
    let set_cookie = login.header("set-cookie").unwrap_or_default().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = ("cookie", set_cookie.split(';').next().unwrap().to_owned());
    let r = http(
        "GET",
        &api_path,
        &[host(format!("127.0.0.1:{}", admin.port)), cookie.clone()],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = http(
        "GET",
        &api_path,
        &[host(format!("evil.example:{}", admin.port)), cookie.clone()],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 421, "another host");
    let r = http(
        "POST",
        &format!("{}/api/cycles/{cycle}/deliveries/{dead}/resend", admin.origin),
        &[
            cookie.clone(),
            ("origin", "http://evil.example".into()),
            ("content-type", "application/json".into()),
        ],
        Some(&json!({"command_id": "console-cross-origin", "reason": "x"}).to_string()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "a command from another origin");

    // 4. The Month page: the cycle's state and every shard, settled and rendered.
    let b = Browser::start().await.unwrap();
    b.set_window_size(1280, 800).await.unwrap();
    b.navigate(&admin.login_url).await.unwrap();
    assert!(!b.url().await.unwrap().contains("token="), "the login redirects to /");
    b.wait_for("nav a[href=\"#month\"]", "the navigation", PAGE, |_| true)
        .await
        .unwrap();
    open(&b, "month").await.unwrap();
    b.wait_for("#role", "the caller's role", PAGE, |s| s.text.contains("administrator"))
        .await
        .unwrap();
    b.wait_for("#month-state", "the cycle's state", PAGE, |s| {
        s.text.contains("SETTLED") || s.attributes.values().any(|v| v == "SETTLED")
    })
    .await
    .unwrap();
    let cells = b.find_all("#shard-grid [data-shard]").await.unwrap();
    assert_eq!(cells.len() as u32, m.shards, "one cell per shard");
    for (i, cell) in cells.iter().enumerate() {
        assert_eq!(
            b.attribute(cell, "data-shard").await.unwrap().as_deref(),
            Some(i.to_string().as_str())
        );
        assert_eq!(b.attribute(cell, "data-status").await.unwrap().as_deref(), Some("DONE"));
        assert_eq!(
            b.attribute(cell, "data-rendered").await.unwrap().as_deref(),
            Some("true")
        );
    }
    b.find("#money").await.unwrap();

    // 5. The Customer page: the dead delivery and its timeline.
    open(&b, "customer").await.unwrap();
    search(&b, &dead, "the dead delivery's state", |s| {
        s.attr("data-state") == Some("DEAD")
    })
    .await
    .unwrap();
    for step in ["dead", "failure"] {
        b.wait_for(
            &format!("#timeline li[data-step=\"{step}\"]"),
            &format!("the timeline's {step} step"),
            PAGE,
            |_| true,
        )
        .await
        .unwrap();
    }

    // 6. The Failures page: resend it with a reason; the audit record names the command.
    open(&b, "failures").await.unwrap();
    let row = format!("#failures-table tr[data-customer=\"{dead}\"]");
    let resend = b
        .wait_for(
            &format!("{row} button[data-action=\"resend\"]"),
            "the dead delivery's resend button",
            PAGE,
            |s| !s.disabled,
        )
        .await
        .unwrap();
    b.click(&resend).await.unwrap();
    b.wait_for("dialog#action-dialog", "the action dialog", PAGE, |s| {
        s.attributes.contains_key("open")
    })
    .await
    .unwrap();
    let command_id = b
        .wait_for("#action-command-id", "the command id", PAGE, |s| {
            !s.text.trim().is_empty() || s.value.as_str().is_some_and(|v| !v.is_empty())
        })
        .await
        .unwrap();
    let command_id = match b.property(&command_id, "value").await.unwrap() {
        Value::String(v) if !v.is_empty() => v,
        _ => b.text(&command_id).await.unwrap().trim().to_owned(),
    };
    b.send_keys(
        &b.find("#action-reason").await.unwrap(),
        "the provider refused every send; it works again",
    )
    .await
    .unwrap();
    b.click(&b.find("#action-submit").await.unwrap()).await.unwrap();
    b.wait_for("#action-result", "the resend's audit record", PAGE, |s| {
        s.attr("data-command-id") == Some(command_id.as_str())
    })
    .await
    .unwrap();
    let (status, record) = api
        .call(ADMIN_KEY, "GET", &format!("/commands/{command_id}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "the command {command_id} is in the audit: {record}");
    // The page's retry after an answer lost on the way (the same command id and body, from
    // the page, through the console) replays the first answer and applies nothing again.
    let replay = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/cycles/' + arguments[0] + '/deliveries/' + arguments[1] + '/resend', {method: 'POST',
                 headers: {'content-type': 'application/json'},
                 body: JSON.stringify({command_id: arguments[2], reason: arguments[3]})})
               .then(r => r.json().then(j => done([r.status, j])), e => done(String(e)));",
            vec![
                json!(cycle),
                json!(dead),
                json!(command_id),
                json!("the provider refused every send; it works again"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(replay[0], json!(200), "{replay}");
    assert_eq!(replay[1]["replayed"], json!(true), "a retry replays: {replay}");

    // 7. The next slots' dispatch and the senders (the provider works again): sent once.
    let working = m.senders(&clock, false).await.unwrap();
    let sent_in = send_until_sent(&m, &api, &clock, &working, first.next(), &dead).await;
    let accepted = m.accepted_sends().await.unwrap();
    let mine: Vec<(&String, &u64)> = accepted
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{subject}#")))
        .collect();
    assert_eq!(mine.len(), 1, "one more send of the resent delivery: {mine:?}");
    assert!(mine[0].0.ends_with("#r1") && *mine[0].1 == 1, "{mine:?}");
    open(&b, "customer").await.unwrap();
    let state = search(&b, &dead, "the resent delivery's state", |s| {
        s.attr("data-state").is_some_and(|v| v.starts_with("SENT_"))
    })
    .await
    .unwrap();
    assert!(state == "SENT_EMAIL" || state == "SENT_SMS", "{state}");

    // 8. The Funnel page follows the month's sends while it stays open.
    open(&b, "funnel").await.unwrap();
    b.execute("window.__stayed = true;", vec![]).await.unwrap();
    let ready_before = funnel_count(&b, "READY").await.unwrap();
    let sent_before = funnel_count(&b, "SENT_EMAIL").await.unwrap();
    assert!(ready_before > 0, "deliveries wait for the month's slots");
    // The month's dispatch and sends run beside the page (in this task: the dispatch
    // handler's future is not Send), until the page has shown them or the month ends.
    let stop = AtomicBool::new(false);
    let dispatch = m.dispatch().await.unwrap();
    let last = m.cycle.next().last_day();
    let month_sends = async {
        let mut run = sent_in.next();
        while !stop.load(Ordering::SeqCst) && run.date <= last {
            let report = local_run::dispatch::run_slot(&dispatch, run).await?;
            if report.enqueued_email + report.enqueued_sms > 0 {
                clock.set(run.start());
                local_run::send::drain(&working, 2, Duration::from_secs(120)).await?;
            }
            run = run.next();
        }
        Ok::<(), anyhow::Error>(())
    };
    let watch = async {
        let changed = b
            .wait_js(
                "the funnel's counts to change without a reload",
                FUNNEL_CHANGE,
                "if (!window.__stayed) return 'reloaded';
                 const n = s => { const e = document.querySelector('#funnel-states [data-state=\"' + s + '\"]');
                                  return e ? Number(e.getAttribute('data-count')) : 0; };
                 const bars = document.querySelectorAll('#funnel-chart rect, #funnel-chart path').length;
                 return (n('READY') < arguments[0] && n('SENT_EMAIL') > arguments[1] && bars > 0)
                     ? {ready: n('READY'), sent: n('SENT_EMAIL'), bars} : null;",
                vec![json!(ready_before), json!(sent_before)],
            )
            .await;
        stop.store(true, Ordering::SeqCst);
        changed
    };
    let (sent, changed) = tokio::join!(month_sends, watch);
    sent.unwrap();
    let changed = changed.unwrap();
    assert_ne!(changed, json!("reloaded"), "the page reloaded");
    b.find("#queues").await.unwrap();
    b.find("#dead-letters").await.unwrap();
    b.find("#funnel-updated").await.unwrap();

    // 9. The viewer: the resend is disabled, naming the role it needs, and refused (403).
    let v = Browser::start().await.unwrap();
    v.set_window_size(1280, 800).await.unwrap();
    v.navigate(&viewer.login_url).await.unwrap();
    v.wait_for("#role", "the viewer's role", PAGE, |s| s.text.contains("viewer"))
        .await
        .unwrap();
    open(&v, "customer").await.unwrap();
    search(&v, &dead, "the delivery's state for the viewer", |s| {
        s.attr("data-state").is_some_and(|v| v.starts_with("SENT_"))
    })
    .await
    .unwrap();
    let button = v
        .wait_for(
            "button[data-action=\"resend\"]",
            "the viewer's resend button",
            PAGE,
            |s| s.disabled && s.attr("title").is_some_and(|t| !t.is_empty()),
        )
        .await
        .unwrap();
    let needs = v
        .execute(
            "const b = arguments[0];
             const n = b.querySelector('.needs-role') || (b.parentElement && b.parentElement.querySelector('.needs-role'));
             return n && n.getClientRects().length > 0 ? n.innerText : null;",
            vec![button.arg()],
        )
        .await
        .unwrap();
    assert!(
        needs.as_str().is_some_and(|t| !t.trim().is_empty()),
        "a visible .needs-role text: {needs}"
    );
    // The Failures page's dead-letter redrive: an administrator's, disabled for the viewer.
    open(&v, "failures").await.unwrap();
    v.wait_for(
        "#failures-dead-letters li[data-queue=\"delivery-dlq\"] button[data-action=\"redrive\"]",
        "the viewer's redrive of delivery-dlq on the Failures page",
        PAGE,
        |s| s.disabled,
    )
    .await
    .unwrap();
    open(&b, "failures").await.unwrap();
    b.wait_for(
        "#failures-dead-letters li[data-queue=\"delivery-dlq\"] button[data-action=\"redrive\"]",
        "the administrator's redrive of delivery-dlq on the Failures page",
        PAGE,
        |s| !s.disabled,
    )
    .await
    .unwrap();
    let status = v
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/cycles/' + arguments[0] + '/deliveries/' + arguments[1] + '/resend', {method: 'POST',
                 headers: {'content-type': 'application/json'},
                 body: JSON.stringify({command_id: 'console-viewer-try', reason: 'a viewer tries'})})
               .then(r => done(r.status), e => done(String(e)));",
            vec![json!(cycle), json!(dead)],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "the admin API refuses the viewer");
    let after = m.accepted_sends().await.unwrap();
    assert_eq!(
        after
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{subject}#")))
            .count(),
        1,
        "still one resend: {after:?}"
    );

    // 10. Nothing personal kept by either browser.
    for (who, browser) in [("administrator", &b), ("viewer", &v)] {
        let k = kept(browser).await.unwrap();
        let href = k["href"].as_str().unwrap_or_default();
        assert!(
            !href.contains(&dead) && !href.contains(&subject) && !has_customer_id(href),
            "{who}: the address holds a customer id: {href}"
        );
        assert_eq!(
            (&k["local"], &k["session"], &k["cookie"], &k["idb"]),
            (&json!(0), &json!(0), &json!(""), &json!(0)),
            "{who}: the browser keeps something: {k}"
        );
    }

    // 11. Accessible and usable at 1280×800 and at a phone's width, in both languages: every
    // page audited (names, labels, contrast, no sideways scrolling of the page), and the
    // navigation and the dialog work from the keyboard.
    for (width, height) in [(1280, 800), (390, 844)] {
        b.set_window_size(width, height).await.unwrap();
        for lang in ["en", "ko"] {
            for page in ["month", "funnel", "customer", "failures", "settings"] {
                open(&b, page).await.unwrap();
                if b.execute("return document.documentElement.lang;", vec![])
                    .await
                    .unwrap()
                    != json!(lang)
                {
                    b.click(&b.find("#lang").await.unwrap()).await.unwrap();
                    ready(&b, page).await.unwrap();
                }
                let problems = b.execute(A11Y_AUDIT, vec![]).await.unwrap();
                assert_eq!(
                    problems,
                    json!([]),
                    "{page} at {width}×{height} in {lang}: accessibility or layout problems"
                );
            }
        }
    }
    b.set_window_size(1280, 800).await.unwrap();
    open(&b, "month").await.unwrap();
    // Enter on a focused navigation link opens its page.
    b.send_keys(&b.find("nav a[href=\"#failures\"]").await.unwrap(), "\u{E007}")
        .await
        .unwrap();
    ready(&b, "failures").await.unwrap();
    // A failure row's action opens the dialog with the focus in it; Escape closes it.
    let action = b
        .wait_for(
            "#failures-table button[data-action]:not([disabled])",
            "an enabled action of a failure row",
            PAGE,
            |_| true,
        )
        .await
        .unwrap();
    b.send_keys(&action, "\u{E007}").await.unwrap();
    b.wait_for("dialog#action-dialog", "the dialog, open", PAGE, |s| {
        s.attributes.contains_key("open")
    })
    .await
    .unwrap();
    let inside = b
        .execute(
            "return document.getElementById('action-dialog').contains(document.activeElement);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inside, json!(true), "the focus moves into the dialog");
    b.send_keys(&b.find("#action-reason").await.unwrap(), "\u{E00C}")
        .await
        .unwrap();
    b.wait_for("dialog#action-dialog", "the dialog, closed by Escape", PAGE, |s| {
        !s.attributes.contains_key("open")
    })
    .await
    .unwrap();

    // The pictures of docs/console.md: each page loaded afresh at 1280×800 (the funnel with
    // the month's sends), and the Customer page at a phone's width.
    if let Some(dir) = &screenshots {
        for (page, width, height, name) in [
            ("month", 1280, 800, "month"),
            ("funnel", 1280, 800, "funnel"),
            ("customer", 1280, 800, "customer"),
            ("failures", 1280, 800, "failures"),
            ("settings", 1280, 800, "settings"),
            ("customer", 390, 844, "customer-narrow"),
        ] {
            b.set_window_size(width, height).await.unwrap();
            b.navigate("about:blank").await.unwrap();
            b.navigate(&format!("{}/#{page}", admin.origin)).await.unwrap();
            ready(&b, page).await.unwrap();
            if page == "customer" {
                search(&b, &dead, "the customer for its picture", |s| {
                    s.attr("data-state").is_some_and(|v| v.starts_with("SENT_"))
                })
                .await
                .unwrap();
            }
            b.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
            let png = b.screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }
    let errors: Vec<String> = b
        .console_log()
        .await
        .unwrap_or_default()
        .into_iter()
        // A refused request shows as "Failed to load resource"; anything else severe (a script
        // error, a Content-Security-Policy violation) is the page's fault.
        .filter(|l| l.starts_with("SEVERE") && !l.contains("Failed to load resource"))
        .collect();
    assert!(errors.is_empty(), "the page's console errors: {errors:?}");
    b.quit().await;
    v.quit().await;
}

/// The page's accessibility and layout problems, as texts (none: `[]`):
/// - the document has a language, and the page does not scroll sideways;
/// - every visible form control has a label (`<label for>`, `aria-label` or
///   `aria-labelledby`), every visible button and link a name, every image an `alt`;
/// - every visible text has a contrast of at least 4.5:1 with the background it is drawn on
///   (3:1 for large text: 24 px, or 18.66 px bold), the WCAG 2 AA level.
const A11Y_AUDIT: &str = r#"
const out = [];
const de = document.documentElement;
if (!['en', 'ko'].includes(de.lang)) out.push('html lang is ' + JSON.stringify(de.lang));
if (de.scrollWidth > de.clientWidth + 1) out.push('the page scrolls sideways: ' + de.scrollWidth + ' > ' + de.clientWidth);
const visible = (e) => { const r = e.getBoundingClientRect(); const cs = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && !e.closest('[hidden]'); };
const name = (e) => e.id ? '#' + e.id : e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '');
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (!visible(e) || e.type === 'hidden') continue;
  if (!(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    out.push('no label: ' + name(e));
}
for (const e of document.querySelectorAll('button, a[href]')) {
  if (!visible(e)) continue;
  if (!(e.textContent.trim() || e.getAttribute('aria-label') || e.getAttribute('title'))) out.push('no name: ' + name(e));
}
for (const e of document.querySelectorAll('img')) if (!e.hasAttribute('alt')) out.push('no alt: ' + name(e));
const rgb = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number); };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const background = (e) => { for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor); if (c.length >= 3 && (c.length < 4 || c[3] >= 0.99)) return c; }
  return [255, 255, 255]; };
const seen = new Set();
for (const e of document.querySelectorAll('body *')) {
  if (!visible(e) || e.closest('svg, iframe')) continue;
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const cs = getComputedStyle(e);
  const fg = rgb(cs.color); const bg = background(e);
  const a = lum(fg.slice(0, 3)); const b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(cs.fontSize); const bold = parseInt(cs.fontWeight, 10) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  const key = name(e) + cs.color + '/' + bg.join(',');
  if (ratio + 0.01 < need && !seen.has(key)) { seen.add(key); out.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + name(e) + ' ' + JSON.stringify(e.textContent.trim().slice(0, 30))); }
}
return out;
"#;

/// Whether `s` holds something shaped like a customer id (`C` and seven digits).
fn has_customer_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(8)
        .any(|w| w[0] == b'C' && w[1..].iter().all(u8::is_ascii_digit))
}
