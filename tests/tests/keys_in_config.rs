//! No key is in any function's configuration, and the keyring rotates without a redeploy.
//!
//! - template.yaml, as deployed (no emulator): no function's environment, its own or the
//!   globals, holds a CloudFormation dynamic reference (`{{resolve:…}}`, resolved into the
//!   configuration at deploy time) or anything that reads as a keyring or a key; the
//!   functions that open contact data name the keyring's secret in `PII_KEYS_SECRET`, and no
//!   other function does; `secretsmanager:GetSecretValue` is granted on that one secret
//!   only, to exactly those functions, and no other Secrets Manager action anywhere;
//!   `kms:Decrypt` only on the optional customer-managed key, through Secrets Manager, and
//!   only when that key is given.
//! - The invoice links' signing keys (`LinkSigningSecret`, docs/channels.md#links-that-last) are
//!   a secret of the stack's own: the functions that sign or verify links name it in
//!   `LINK_KEYS_SECRET` (`!Ref LinkSigningSecret`), and no other function does;
//!   `secretsmanager:GetSecretValue` on it goes to exactly those functions.
//! - A local stack (emulator): every function's environment, as provisioned and as the local
//!   hosts pass it, holds no key; the readers name the stack's own secret and start from it.
//! - Rotation (emulator): data sealed under `k1` still opens after `k2` becomes active, in a
//!   running instance and a fresh one; an instance that cached `k1` only opens data sealed
//!   under `k2` by fetching the secret again, once; a value under an id the secret lacks
//!   fails to open and fetches nothing more within the interval. The admin API, running
//!   since before the rotation, masks a customer resealed under the new key.

use std::path::Path;

use adapters::keyring::{PiiKeys, SECRET_VAR};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::CustomerId;
use domain::customer::Contact;
use domain::pii::{Keyring, PiiError};
use integration_tests::admin::Api;
use local_aws::PII_KEYS_SECRET_PARAMETER;
use local_aws::template::Template;
use serde_yaml::Value;

/// The functions that open contact data, and so read the keyring.
const KEY_READERS: &[&str] = &[
    "RenderShardFunction",
    "SendEmailFunction",
    "SendSmsFunction",
    "AdminApiFunction",
    "IngestFunction",
    // The hash of a bounced or complaining contact whose delivery carries none.
    "DeliveryEventsFunction",
];

/// The functions that sign or verify invoice links, and so read the link keys.
const LINK_KEY_READERS: &[&str] = &["SendSmsFunction", "InvoiceLinkFunction"];

/// The variable naming the link keys' secret.
const LINK_SECRET_VAR: &str = adapters::links::SECRET_VAR;

/// The link keys' secret: a resource of the stack (`!Ref` is its ARN), unless the stack is
/// given one by name (`LinkKeysSecretName`, under the condition `OwnLinkKeys`).
const LINK_SECRET: &str = "LinkSigningSecret";

/// The link keys' secret given by name, as a policy names it.
const GIVEN_LINK_SECRET_ARN: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${LinkKeysSecretName}-??????";

/// Whether `v` is `!If [OwnLinkKeys, !Ref LinkSigningSecret, given]`, `given` as `is_given`
/// checks it: the stack's own link secret, or the one it is given.
fn link_secret_choice(v: &Value, is_given: impl Fn(&Value) -> bool) -> bool {
    let Value::Tagged(t) = v else { return false };
    let Some([condition, own, given]) = t.value.as_sequence().map(Vec::as_slice) else {
        return false;
    };
    t.tag == "If"
        && condition.as_str() == Some("OwnLinkKeys")
        && matches!(own, Value::Tagged(r) if r.tag == "Ref" && r.value.as_str() == Some(LINK_SECRET))
        && is_given(given)
}

/// The one resource `secretsmanager:GetSecretValue` is granted on: the keyring's secret (the
/// six characters Secrets Manager appends to a secret's name in its ARN).
const SECRET_ARN: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${PiiKeysSecretName}-??????";

fn template() -> Template {
    Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).expect("template.yaml parses")
}

/// A value with its tags (`!Sub`, `!If`, …) taken off.
fn untagged(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untagged(&t.value),
        other => other,
    }
}

/// Every string in `v`, the arguments of `!Sub`, `!Join` and the like included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match untagged(v) {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(m) => m.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// Why `value` may not sit in a function's configuration, if it may not.
fn key_material(value: &str) -> Option<&'static str> {
    if value.contains("{{resolve:") {
        return Some("a dynamic reference, resolved into the configuration at deploy time");
    }
    if Keyring::parse(value).is_ok() {
        return Some("a keyring");
    }
    let is_key = |piece: &str| STANDARD.decode(piece.trim()).is_ok_and(|raw| raw.len() == 32);
    if value.split([',', ':', ' ', '"']).any(is_key) {
        return Some("a 32-byte key in base64");
    }
    None
}

/// Every function's variables, the globals first: (function, name, value).
fn function_variables(t: &Template) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for function in t.functions() {
        let own = t.function_env(function).expect("the function's environment reads");
        for (name, value) in t.globals_env().iter().cloned().chain(own) {
            out.push((function.to_owned(), name, value));
        }
    }
    out
}

/// What in the functions' environment may not be there: `function.VARIABLE: why`.
fn environment_problems(t: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, name, value) in function_variables(t) {
        if name == "PII_KEYS" {
            problems.push(format!("{function}.{name}: the keyring itself"));
        }
        let mut found = Vec::new();
        strings(&value, &mut found);
        for s in found {
            if let Some(why) = key_material(&s) {
                problems.push(format!("{function}.{name}: {why}"));
            }
        }
    }
    problems
}

#[test]
fn the_checks_find_a_key_in_a_function_configuration() {
    let t = Template::parse(
        r#"
Parameters:
  PiiKeysSecretName: {Type: String, Default: billing-pii-keys}
Resources:
  Resolved:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          PII_KEYS: !Sub "{{resolve:secretsmanager:${PiiKeysSecretName}:SecretString}}"
  Literal:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          KEYS: dev:ZGV2LW9ubHkta2V5LW5ldmVyLXVzZS1pbi1wcm9kISE=
          ONE_KEY: ZGV2LW9ubHkta2V5LW5ldmVyLXVzZS1pbi1wcm9kISE=
          NAME: !Ref PiiKeysSecretName
"#,
    )
    .unwrap();
    let problems = environment_problems(&t);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for expected in [
        "Resolved.PII_KEYS: the keyring itself",
        "Resolved.PII_KEYS: a dynamic reference",
        "Literal.KEYS: a keyring",
        "Literal.ONE_KEY: a 32-byte key",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected}: {problems:#?}"
        );
    }
}

#[test]
fn no_function_environment_holds_a_key_or_a_dynamic_reference() {
    let t = template();
    assert!(t.functions().count() >= KEY_READERS.len());
    assert_eq!(environment_problems(&t), Vec::<String>::new());
    // The readers get the secret's name, and only the readers get it.
    for (function, name, value) in function_variables(&t) {
        if name != SECRET_VAR {
            continue;
        }
        assert!(
            KEY_READERS.contains(&function.as_str()),
            "{function} names the keyring's secret"
        );
        let is_ref = matches!(&value, Value::Tagged(t) if t.tag == "Ref");
        assert!(
            is_ref && untagged(&value).as_str() == Some("PiiKeysSecretName"),
            "{function}.{SECRET_VAR} is !Ref PiiKeysSecretName"
        );
    }
    for reader in KEY_READERS {
        let vars = t.function_env(reader).unwrap();
        assert!(
            vars.iter().any(|(n, _)| n == SECRET_VAR),
            "{reader} has no {SECRET_VAR}"
        );
    }
    // The link keys: the same, with their own secret.
    for (function, name, value) in function_variables(&t) {
        if name != LINK_SECRET_VAR {
            continue;
        }
        assert!(
            LINK_KEY_READERS.contains(&function.as_str()),
            "{function} names the link keys' secret"
        );
        assert!(
            link_secret_choice(
                &value,
                |given| matches!(given, Value::Tagged(r) if r.tag == "Ref" && r.value.as_str() == Some("LinkKeysSecretName"))
            ),
            "{function}.{LINK_SECRET_VAR} is !If [OwnLinkKeys, !Ref {LINK_SECRET}, !Ref LinkKeysSecretName]"
        );
    }
    for reader in LINK_KEY_READERS {
        let vars = t.function_env(reader).unwrap();
        assert!(
            vars.iter().any(|(n, _)| n == LINK_SECRET_VAR),
            "{reader} has no {LINK_SECRET_VAR}"
        );
    }
}

/// One `Allow` statement: the resource it is in, its actions and resources, its condition,
/// and the template condition (`!If`) it is granted under, if any.
#[derive(Debug)]
struct Allow {
    owner: String,
    actions: Vec<String>,
    resources: Vec<Value>,
    condition: Option<Value>,
    only_if: Option<String>,
}

fn allows(owner: &str, v: &Value, only_if: Option<&str>, out: &mut Vec<Allow>) {
    if let Value::Tagged(t) = v
        && t.tag == "If"
        && let Value::Sequence(items) = &t.value
        && let [cond, yes, no] = items.as_slice()
    {
        allows(owner, yes, cond.as_str(), out);
        allows(owner, no, cond.as_str(), out);
        return;
    }
    match untagged(v) {
        Value::Mapping(m) => {
            if m.get("Effect").and_then(Value::as_str) == Some("Allow") {
                let mut actions = Vec::new();
                if let Some(a) = m.get("Action") {
                    strings(a, &mut actions);
                }
                let resources = match m.get("Resource").map(untagged) {
                    // A choice between resources (`!If`) is one resource.
                    _ if matches!(m.get("Resource"), Some(Value::Tagged(t)) if t.tag == "If") => {
                        m.get("Resource").cloned().into_iter().collect()
                    }
                    Some(Value::Sequence(items)) => items.clone(),
                    Some(_) => m.get("Resource").cloned().into_iter().collect(),
                    None => Vec::new(),
                };
                out.push(Allow {
                    owner: owner.to_owned(),
                    actions,
                    resources,
                    condition: m.get("Condition").cloned(),
                    only_if: only_if.map(str::to_owned),
                });
            }
            m.values().for_each(|x| allows(owner, x, only_if, out));
        }
        Value::Sequence(items) => items.iter().for_each(|x| allows(owner, x, only_if, out)),
        _ => {}
    }
}

#[test]
fn get_secret_value_is_granted_on_the_one_secret_to_the_readers_only() {
    let t = template();
    let mut all = Vec::new();
    for decl in t.resources() {
        allows(&decl.logical_id, &decl.properties, None, &mut all);
    }
    let mut readers = Vec::new();
    let mut link_readers = Vec::new();
    for a in &all {
        for action in &a.actions {
            let lower = action.to_ascii_lowercase();
            assert!(
                lower != "*" && lower != "secretsmanager:*" && lower != "kms:*",
                "{}: {action} is granted",
                a.owner
            );
            if lower.starts_with("secretsmanager:") {
                assert_eq!(action, "secretsmanager:GetSecretValue", "{}: {action}", a.owner);
                let resources: Vec<Option<&str>> = a.resources.iter().map(|r| untagged(r).as_str()).collect();
                assert_eq!(a.only_if, None, "{}", a.owner);
                if a.resources.len() == 1
                    && link_secret_choice(
                        &a.resources[0],
                        |given| matches!(given, Value::Tagged(r) if r.tag == "Sub" && r.value.as_str() == Some(GIVEN_LINK_SECRET_ARN)),
                    )
                {
                    link_readers.push(a.owner.clone());
                    continue;
                }
                assert_eq!(
                    resources,
                    [Some(SECRET_ARN)],
                    "{}: GetSecretValue on {resources:?}",
                    a.owner
                );
                readers.push(a.owner.clone());
            }
            if lower.starts_with("kms:") {
                assert_eq!(action, "kms:Decrypt", "{}: {action}", a.owner);
                assert!(KEY_READERS.contains(&a.owner.as_str()), "{} may decrypt", a.owner);
                assert_eq!(a.only_if.as_deref(), Some("HasPiiKeysKmsKey"), "{}", a.owner);
                let resources: Vec<Option<&str>> = a.resources.iter().map(|r| untagged(r).as_str()).collect();
                assert_eq!(resources, [Some("PiiKeysKmsKeyArn")], "{}", a.owner);
                let via = a
                    .condition
                    .as_ref()
                    .and_then(|c| c.get("StringEquals"))
                    .and_then(|c| c.get("kms:ViaService"))
                    .and_then(|v| untagged(v).as_str());
                assert_eq!(via, Some("secretsmanager.${AWS::Region}.amazonaws.com"), "{}", a.owner);
            }
        }
    }
    readers.sort();
    let mut expected: Vec<String> = KEY_READERS.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(readers, expected);
    link_readers.sort();
    let mut expected: Vec<String> = LINK_KEY_READERS.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(link_readers, expected, "GetSecretValue on the link keys");
}

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

async fn put_secret(sm: &aws_sdk_secretsmanager::Client, secret: &str, value: &str) {
    sm.put_secret_value()
        .secret_id(secret)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn secret_value(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> String {
    let out = sm.get_secret_value().secret_id(secret).send().await.unwrap();
    out.secret_string().unwrap().to_owned()
}

fn email_of(contact: &Contact, keys: &Keyring, id: &CustomerId) -> Result<String, PiiError> {
    contact.open(keys, id).map(|c| c.email.expose().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_stack_holds_no_key_in_any_function_configuration() {
    let stack = local_aws::fresh_stack("keys-in-config").await.unwrap();
    let secret = stack.resources.parameter(PII_KEYS_SECRET_PARAMETER).unwrap().to_owned();
    assert!(
        secret.starts_with(stack.resources.prefix()),
        "{secret} is the stack's own"
    );
    let sm = aws_sdk_secretsmanager::Client::new(&stack.config);
    let value = secret_value(&sm, &secret).await;
    let keyring = Keyring::parse(&value).expect("the stack's secret holds a keyring");
    // The link keys' secret: the stack's own, generated, holding link keys.
    let link_secret = stack
        .resources
        .arn(LINK_SECRET)
        .expect("the link keys' secret is provisioned")
        .to_owned();
    assert!(
        link_secret.contains(stack.resources.prefix()),
        "{link_secret} is the stack's own"
    );
    let link_value = secret_value(&sm, &link_secret).await;
    assert!(
        domain::link::LinkKeys::parse(&link_value).is_ok(),
        "the link secret holds link keys"
    );
    let mut pieces: Vec<&str> = value.split([',', ':']).filter(|p| p.len() >= 20).collect();
    pieces.extend(link_value.split([',', ':']).filter(|p| p.len() >= 20));
    assert!(!pieces.is_empty());
    let t = template();
    for function in t.functions() {
        let provisioned = stack.resources.function_env(function);
        let hosted = local_run::settle::local_function_env(&stack.resources, function);
        for env in [&provisioned, &hosted] {
            for (name, v) in env {
                assert_eq!(key_material(v), None, "{function}.{name}");
                assert!(!pieces.iter().any(|p| v.contains(p)), "{function}.{name} holds a key");
            }
            match KEY_READERS.contains(&function) {
                true => assert_eq!(env.get(SECRET_VAR), Some(&secret), "{function}"),
                false => assert_eq!(env.get(SECRET_VAR), None, "{function}"),
            }
            match LINK_KEY_READERS.contains(&function) {
                true => assert_eq!(env.get(LINK_SECRET_VAR), Some(&link_secret), "{function}"),
                false => assert_eq!(env.get(LINK_SECRET_VAR), None, "{function}"),
            }
        }
    }
    // The readers start from the stack's secret.
    let keys = PiiKeys::load(&stack.config, &stack.resources.function_env("RenderShardFunction"))
        .await
        .unwrap();
    assert_eq!(keys.current().await.active_key_id(), keyring.active_key_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_rotates_without_a_redeploy_and_old_data_stays_readable() {
    let stack = local_aws::fresh_stack("keys-rotate").await.unwrap();
    let secret = stack.resources.parameter(PII_KEYS_SECRET_PARAMETER).unwrap().to_owned();
    let sm = aws_sdk_secretsmanager::Client::new(&stack.config);
    let (k1, k2) = (format!("k1:{}", key(1)), format!("k2:{}", key(2)));
    put_secret(&sm, &secret, &k1).await;
    let env = stack.resources.function_env("SendEmailFunction");

    // A running instance: it fetched `k1` alone at its cold start.
    let running = PiiKeys::load(&stack.config, &env).await.unwrap();
    let (a, b) = (
        CustomerId::new("C0000001").unwrap(),
        CustomerId::new("C0000002").unwrap(),
    );
    let old = Contact::seal(
        &Keyring::parse(&k1).unwrap(),
        &a,
        "홍길동",
        "hong@example.com",
        "010-1234-5678",
    );
    assert_eq!(old.email.key_id(), Some("k1"));

    // `k2` becomes active with `k1` still present (both steps of a rotation at once: the
    // harshest case for an instance that has not refreshed).
    put_secret(&sm, &secret, &format!("{k2},{k1}")).await;

    // The running instance still opens `k1` data, from its cache.
    let keys = running.for_contact(&old).await.unwrap();
    assert_eq!(email_of(&old, &keys, &a).unwrap(), "hong@example.com");
    assert_eq!(running.fetch_count().await, 1);

    // A fresh instance seals under `k2` and opens `k1` data.
    let fresh = PiiKeys::load(&stack.config, &env).await.unwrap().current().await;
    assert_eq!(fresh.active_key_id(), "k2");
    assert_eq!(email_of(&old, &fresh, &a).unwrap(), "hong@example.com");
    let new = Contact::seal(&fresh, &b, "김민수", "kim@example.com", "010-2345-6789");
    assert_eq!(new.email.key_id(), Some("k2"));

    // The running instance never saw `k2`: it fetches the secret again, once, and opens it.
    assert!(!running.current().await.contains("k2"));
    assert!(matches!(
        email_of(&new, &*running.current().await, &b),
        Err(PiiError::UnknownKey { .. })
    ));
    let keys = running.for_contact(&new).await.unwrap();
    assert_eq!(email_of(&new, &keys, &b).unwrap(), "kim@example.com");
    assert_eq!(email_of(&old, &keys, &a).unwrap(), "hong@example.com");
    assert_eq!(running.fetch_count().await, 2);

    // Bounded: a value under an id the secret does not hold fails to open, and asking again
    // within the interval fetches nothing.
    let stray = Contact::seal(
        &Keyring::parse(&format!("k9:{}", key(9))).unwrap(),
        &a,
        "x",
        "y@example.com",
        "010",
    );
    for _ in 0..3 {
        let keys = running.for_contact(&stray).await.unwrap();
        assert!(matches!(email_of(&stray, &keys, &a), Err(PiiError::UnknownKey { .. })));
    }
    assert_eq!(running.fetch_count().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_admin_api_reads_data_sealed_under_a_key_added_after_its_cold_start() {
    let api = Api::new("keys-rotate-admin").await;
    let secret = api
        .stack
        .resources
        .parameter(PII_KEYS_SECRET_PARAMETER)
        .unwrap()
        .to_owned();
    let sm = aws_sdk_secretsmanager::Client::new(&api.stack.config);
    let before = secret_value(&sm, &secret).await;
    assert_eq!(api.deps.keys.fetch_count().await, 1);

    // Rotation: `k2` active, the keys the stack was seeded under still present.
    let rotated = format!("k2:{},{before}", key(2));
    put_secret(&sm, &secret, &rotated).await;

    // A loader with the new keyring seals one customer again, under `k2`.
    let (id, _) = api.delivery(0);
    let (cycle, shard, customer) = domain::delivery::parse_delivery_id(&id).unwrap();
    let mut c = api
        .deps
        .customers
        .get_in_shard(shard, customer.as_str())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let open = c
        .contact
        .open(&Keyring::parse(&before).unwrap(), &c.customer_id)
        .unwrap();
    c.contact = Contact::seal(
        &Keyring::parse(&rotated).unwrap(),
        &c.customer_id,
        open.name.expose(),
        open.email.expose(),
        open.phone.expose(),
    );
    assert_eq!(c.contact.email.key_id(), Some("k2"));
    api.deps.customers.put_all(&[c]).await.unwrap();

    // The admin API, running since before the rotation, masks it: it fetched the keyring
    // again on the unknown id. A customer still sealed under the old key reads as before.
    let (other_id, other) = api.delivery(1);
    for (who, expected_fetches) in [(customer.as_str().to_owned(), 2), (other, 2)] {
        let r = api.get(&format!("/cycles/{cycle}/deliveries/{who}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let email = r.body["contact"]["email"].as_str().unwrap_or_default();
        assert!(
            email.contains('*') && email.contains('@'),
            "{who}: {}",
            r.body["contact"]
        );
        assert_eq!(api.deps.keys.fetch_count().await, expected_fetches, "{who}");
    }
    assert_ne!(other_id, id);
}
