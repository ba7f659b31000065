//! Invoice links that last (docs/channels.md#links-that-last), against the emulator.
//!
//! - The link the SMS sender makes (`SendSmsFunction`'s environment as provisioned: the link
//!   function's URL, the stack's own generated link secret) is short, carries no AWS signature,
//!   credentials or personal data, and fits the SMS.
//! - The invoice-link function, started fresh from its own environment as provisioned (a new
//!   S3 client, no session shared with the sender), serves the invoice's stored bytes eight days
//!   after the send (past any session credentials' lifetime, and past the 7 days a presigned URL
//!   may ever live), and up to the last second of the invoice's due date + 90 days; then 410.
//! - A tampered token is 403, an invoice no longer stored 404, another method 405, and `HEAD`
//!   gets the headers alone.
//! - Rotation: with a new active key put into the secret, links signed before it still open, and
//!   a verifier that cached the old keys accepts a link signed with the new one by fetching the
//!   secret once.

use adapters::data_bucket::{DataBucket, invoice_key, pack_key, pack_name, sha256_hex};
use adapters::links::{LinkKeyring, LinkSigner};
use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::link::LinkKeys;
use domain::range::ByteRange;
use domain::{CustomerId, Cycle};
use serde_json::json;

/// A function URL request for `path`, as Lambda hands it over for an anonymous caller.
fn request(method: &str, path: &str) -> LambdaFunctionUrlRequest {
    serde_json::from_value(json!({
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "example.lambda-url.ap-northeast-2.on.aws"},
        "requestContext": {
            "accountId": "anonymous",
            "requestId": "links-test",
            "timeEpoch": 1_797_416_100_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.23"}
        },
        "isBase64Encoded": false
    }))
    .unwrap()
}

/// The invoice-link function as a fresh instance of it starts (its own environment, its own
/// clients), its clock set to `at`.
async fn link_function(stack: &local_aws::Stack, at: DateTime<Utc>) -> invoice_link::Deps {
    let config = local_aws::sdk_config_for(local_aws::Emulator::shared().await.unwrap().endpoint_url()).await;
    let mut deps = invoice_link::Deps::load(&config, &stack.resources.function_env("InvoiceLinkFunction"))
        .await
        .unwrap();
    deps.clock = std::sync::Arc::new(move || at);
    deps
}

fn header<'a>(r: &'a LambdaFunctionUrlResponse, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn gzip(html: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(html.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_made_at_the_send_opens_the_invoice_until_ninety_days_after_its_due_date() {
    let stack = local_aws::fresh_stack("links").await.unwrap();
    let sender_env = stack.resources.function_env("SendSmsFunction");
    let signer = LinkSigner::load(&stack.config, &sender_env).await.unwrap();
    assert_eq!(signer.valid_days_after_due(), 90);

    // An invoice as render-shard stores it: a member of its shard's pack, between two others.
    let cycle: Cycle = "2026-11".parse().unwrap();
    let customer = CustomerId::new("C0000042").unwrap();
    let bucket = DataBucket::new(
        adapters::s3_client(&stack.config),
        stack.resources.bucket("DataBucket").unwrap(),
    );
    let stored = gzip("<html><body>청구서 2026년 11월</body></html>");
    let before = gzip("<html><body>C0000041의 청구서</body></html>");
    let pack = [
        before.clone(),
        stored.clone(),
        gzip("<html><body>C0000043</body></html>"),
    ]
    .concat();
    let name = pack_name("v1", &sha256_hex(&pack));
    let range = ByteRange::new(before.len() as u64, stored.len() as u64).unwrap();
    bucket
        .put_invoice(&pack_key(cycle, 1, &name), pack.clone(), &sha256_hex(&pack))
        .await
        .unwrap();

    // The send: 2026-12-16 10:00 Seoul. The link, as the SMS sender makes it.
    let sent_at = chrono::FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 12, 16, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let due = invoice::due_date(cycle);
    assert_eq!(due.to_string(), "2026-12-31");
    let link = signer.link(cycle, 1, &customer, &name, Some(range), due);
    let url = signer.url(&link).await.unwrap();
    let base = sender_env["LINK_BASE_URL"].trim_end_matches('/');
    assert!(
        base.starts_with("https://") && base.ends_with(".lambda-url.ap-northeast-2.on.aws"),
        "{base}"
    );
    let path = url.strip_prefix(base).unwrap().to_owned();
    assert!(path.starts_with("/i/"), "{url}");
    // Short, no AWS signature or credentials, no personal data; and it fits the SMS.
    assert!(url.len() <= 160, "{} characters: {url}", url.len());
    for forbidden in [
        "X-Amz-",
        "x-amz-",
        "?",
        "Signature",
        "Credential",
        "Security-Token",
        "%",
    ] {
        assert!(!url.contains(forbidden), "{forbidden} in {url}");
    }
    for personal in ["홍길동", "@", "010"] {
        assert!(!url.contains(personal), "{personal} in {url}");
    }
    let text = invoice::sms_with_link(
        &format!("[청구서] 11월 요금 55,000원\n{}", invoice::LINK_PLACEHOLDER),
        &url,
    )
    .unwrap();
    assert!(invoice::euc_kr_len(&text).unwrap() <= invoice::LMS_MAX_BYTES);
    assert!(url.len() <= invoice::MAX_LINK_BYTES);

    // Eight days after the send, a fresh instance of the link function with a new S3 client.
    let later = link_function(&stack, sent_at + Duration::days(8)).await;
    let r = invoice_link::serve(&later, &request("GET", &path)).await;
    assert_eq!(r.status_code, 200, "{r:?}");
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "content-encoding"), "gzip");
    assert_eq!(header(&r, "cache-control"), "private, no-store");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert_eq!(header(&r, "x-robots-tag"), "noindex");
    assert!(r.is_base64_encoded);
    assert_eq!(
        STANDARD.decode(r.body.unwrap()).unwrap(),
        stored,
        "its member's bytes, nothing else"
    );
    let head = invoice_link::serve(&later, &request("HEAD", &path)).await;
    assert_eq!((head.status_code, head.body), (200, None));

    // Through the end of due date + 90 days (2027-03-31, Seoul); gone from its next second.
    let end = DateTime::from_timestamp(link.expires_at, 0).unwrap();
    assert_eq!(end.to_rfc3339(), "2027-03-31T15:00:00+00:00");
    let last = link_function(&stack, end - Duration::seconds(1)).await;
    assert_eq!(
        invoice_link::serve(&last, &request("GET", &path)).await.status_code,
        200
    );
    let after = link_function(&stack, end).await;
    let gone = invoice_link::serve(&after, &request("GET", &path)).await;
    assert_eq!(gone.status_code, 410, "{gone:?}");
    assert_eq!(header(&gone, "cache-control"), "private, no-store");

    // Tampered: every character of the token changed in turn is refused, nothing served.
    let token = path.strip_prefix("/i/").unwrap();
    for i in [0, 5, token.len() / 2, token.len() - 1] {
        let mut t: Vec<char> = token.chars().collect();
        t[i] = if t[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = t.into_iter().collect();
        let r = invoice_link::serve(&later, &request("GET", &format!("/i/{tampered}"))).await;
        assert_eq!(r.status_code, 403, "character {i}: {r:?}");
    }
    // A token made with another key (one the stack does not have) is refused.
    let stranger = LinkKeys::parse(&format!("k9:{}", STANDARD.encode([9u8; 32]))).unwrap();
    let forged = stranger.sign(&link).unwrap();
    let r = invoice_link::serve(&later, &request("GET", &format!("/i/{forged}"))).await;
    assert_eq!(r.status_code, 403);

    // An invoice of its own (a correction's) opens by its format 1 link.
    let own = gzip("<html><body>정정 청구서</body></html>");
    bucket
        .put_invoice(
            &invoice_key(cycle, 1, customer.as_str(), "v1-c0001-h"),
            own.clone(),
            "h",
        )
        .await
        .unwrap();
    let correction = signer.link(cycle, 1, &customer, "v1-c0001-h", None, due);
    let corrected_url = signer.url(&correction).await.unwrap();
    let r = invoice_link::serve(&later, &request("GET", corrected_url.strip_prefix(base).unwrap())).await;
    assert_eq!(r.status_code, 200, "{r:?}");
    assert_eq!(STANDARD.decode(r.body.unwrap()).unwrap(), own);
    // A range past the pack's end (a pack never so written) is no invoice, not a part of one.
    let beyond = signer.link(
        cycle,
        1,
        &customer,
        &name,
        Some(ByteRange::new(pack.len() as u64 - 4, 100).unwrap()),
        due,
    );
    let beyond_url = signer.url(&beyond).await.unwrap();
    let r = invoice_link::serve(&later, &request("GET", beyond_url.strip_prefix(base).unwrap())).await;
    assert_eq!(r.status_code, 404, "{r:?}");

    // A genuine link to an invoice no longer stored; another method; another path.
    let other = signer.link(cycle, 1, &CustomerId::new("C0000043").unwrap(), "v1", None, due);
    let other_path = signer.url(&other).await.unwrap().strip_prefix(base).unwrap().to_owned();
    assert_eq!(
        invoice_link::serve(&later, &request("GET", &other_path))
            .await
            .status_code,
        404
    );
    let post = invoice_link::serve(&later, &request("POST", &path)).await;
    assert_eq!((post.status_code, header(&post, "allow")), (405, "GET, HEAD"));
    assert_eq!(invoice_link::serve(&later, &request("GET", "/")).await.status_code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_survive_a_rotation_of_the_signing_keys() {
    let stack = local_aws::fresh_stack("links-rotate").await.unwrap();
    let sender_env = stack.resources.function_env("SendSmsFunction");
    let secret = sender_env["LINK_KEYS_SECRET"].clone();
    let sm = aws_sdk_secretsmanager::Client::new(&stack.config);
    let generated = sm
        .get_secret_value()
        .secret_id(&secret)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    assert_eq!(
        LinkKeys::parse(&generated).unwrap().ids(),
        [domain::link::GENERATED_KEY_ID]
    );

    let now = Utc::now().timestamp();
    let cycle: Cycle = "2026-11".parse().unwrap();
    let customer = CustomerId::new("C0000001").unwrap();
    let due = invoice::due_date(cycle);
    let before = LinkSigner::load(&stack.config, &sender_env).await.unwrap();
    let link = domain::link::InvoiceLink {
        expires_at: now + 3_600,
        ..before.link(cycle, 0, &customer, "v1", None, due)
    };
    let old_url = before.url(&link).await.unwrap();

    // A verifier that started before the rotation.
    let running = LinkKeyring::load(&stack.config, &stack.resources.function_env("InvoiceLinkFunction"))
        .await
        .unwrap();

    // The new key made active, the generated one kept after it.
    let rotated = format!("k2:{},{generated}", STANDARD.encode([2u8; 32]));
    sm.put_secret_value()
        .secret_id(&secret)
        .secret_string(&rotated)
        .send()
        .await
        .unwrap();
    let after = LinkSigner::load(&stack.config, &sender_env).await.unwrap();
    let new_url = after.url(&link).await.unwrap();
    assert_ne!(new_url, old_url);
    let token = |url: &str| url.rsplit('/').next().unwrap().to_owned();

    // The old link still opens; the new one opens for the running verifier after one fetch.
    assert_eq!(running.verify(&token(&old_url), now).await.unwrap(), link);
    assert_eq!(running.fetch_count().await, 1);
    assert_eq!(running.verify(&token(&new_url), now).await.unwrap(), link);
    assert_eq!(running.fetch_count().await, 2);
    // A forged token then costs no further fetch within the interval.
    let stranger = LinkKeys::parse(&format!("k9:{}", STANDARD.encode([9u8; 32]))).unwrap();
    for _ in 0..3 {
        let forged = stranger.sign(&link).unwrap();
        assert!(matches!(
            running.verify(&forged, now).await,
            Err(Ok(domain::link::LinkError::Forged))
        ));
    }
    assert_eq!(running.fetch_count().await, 2);
}
