//! `AdminApi`: the operators' JSON API, behind a Lambda Function URL with `AuthType:
//! AWS_IAM` (the caller's IAM identity is in every request; it is who the audit names).
//!
//! | route | answer |
//! |---|---|
//! | `GET /cycles?limit=` | the latest cycles, newest first: state, times, bills, the execution |
//! | `GET /cycles/{cycle}` | the cycle: state, shards done / failed / rendered (and each shard), counts and checksum, the execution and its console address |
//! | `GET /cycles/{cycle}/funnel` | the cycle's deliveries counted by state (every state, zeros included), by channel, by send day and sends by 2-hour slot; `needs_operator`: the `UNCONFIRMED` ones; the send queues' depth and the dead letters waiting |
//! | `GET /cycles/{cycle}/failures?limit=&next=&code=&channel=&stage=` | the cycle's failure log, a page at a time, filtered |
//! | `GET /cycles/{cycle}/deliveries/{customer}` | one delivery: state, channel, attempts, slots, template version, a link to the invoice, masked contact data, failure records, commands and its timeline |
//! | `POST /cycles/{cycle}/deliveries/{customer}/schedule` | a `READY` or `HELD` delivery goes out no earlier than `available_at` |
//! | `POST /cycles/{cycle}/deliveries/{customer}/resend` | a sent, dead, held or unconfirmed delivery goes out once more, in a new send round; a `QUEUED` or `SENDING` one that no sender holds any more goes back to dispatch in its round |
//! | `POST /cycles/{cycle}/deliveries/{customer}/convert-to-sms` | a `READY` or `HELD` delivery goes out by SMS |
//! | `POST /cycles/{cycle}/deliveries/{customer}/force-send` | a `READY` or `HELD` delivery goes out now, ignoring the customer's do-not-disturb slots (never the quiet window) |
//! | `POST /cycles/{cycle}/deliveries/{customer}/hold` | a `READY` delivery is held: dispatch leaves it until a `schedule`, `resend`, `convert-to-sms` or `force-send` |
//! | `POST /cycles/{cycle}/deliveries/{customer}/confirm` | an `UNCONFIRMED` delivery (a call to a provider that cannot be asked may have gone through) is recorded as sent on its channel, once the operator has seen the provider's evidence |
//! | `GET /commands/{command id}` | one command: who, what, why, when, its answer |
//! | `GET /audit?day=YYYY-MM-DD&limit=&next=` | the commands of a day |
//! | `GET /templates` | the invoice template versions this build carries, and the default one |
//! | `GET /templates/{version}/preview?sample=` | a version rendered for a fictional sample bill: subject, HTML, text message |
//! | `POST /templates/{version}/activate` | new cycles pin this version |
//! | `GET /settings`, `GET`/`PUT /settings/{name}` | the channel policy and the active template version, at runtime |
//! | `GET /queues`, `GET /queues/{queue}` | the dead-letter queues and their redrives |
//! | `POST /queues/{queue}/redrive` | moves a dead-letter queue's messages back at a bounded rate |
//! | `GET /roles` | who has which platform role, and the caller's own |
//! | `PUT /roles/{principal}` | grants a role to an IAM role or user (`none` removes it) |
//! | `PUT /customers/{customer}/preferences` | a customer's own do-not-disturb slots, send day, channel and contact data, for a customer-service application acting for the customer; the deliveries not yet sent move with them |
//! | `GET /suppressions?limit=&next=` | the suppression list: keyed hashes of addresses not emailed, why, since when, from what |
//! | `POST /suppressions` | puts an address (given, or a customer's current one) on the suppression list, as its keyed hash |
//! | `DELETE /suppressions/{hash}` | takes an entry off the suppression list |
//! | `GET /cycles/{cycle}/bills/{customer}/corrections` | a settled bill's corrections, its original total and the amount due now |
//! | `POST /cycles/{cycle}/bills/{customer}/corrections` | an administrator's credit, debit or re-rating of a settled bill: a correction record, a corrected invoice, and the bill's delivery sent once more with it |
//!
//! Every route needs a platform role (viewer, operator, administrator: [`roles`]), checked in
//! one place against one table ([`access::ROUTES`]) before its handler runs: a caller without
//! it gets 403 and nothing changes. Every read is logged with the route, the caller's role and
//! the caller masked ([`identity`]); every command is audited.
//!
//! Every mutating command carries `command_id` and `reason` (see [`command_log`]); a delivery
//! command's effect is built by `adapters::deliveries::commands`, the one place of the
//! operators' transitions. Answers never hold contact data in clear, internal errors or stack
//! details: a 500 names the request id, the log has the cause.
//!
//! Where things are:
//!
//! | file | holds |
//! |---|---|
//! | `lib.rs` | [`Deps`], the Lambda entry [`handle`], [`serve`] and the router |
//! | `access.rs` | the routes and the role each needs |
//! | `identity.rs` | the caller's principal (the role behind a session) and its masked form for logs |
//! | `roles.rs` | the platform roles, their mapping in `AdminTable`, `GET`/`PUT /roles` |
//! | `http.rs` | [`Request`], [`Response`], [`ApiError`]: the Function URL's event and the answers |
//! | `reads.rs` | the cycles, the cycle, the funnel, the failure log, one delivery; the page tokens |
//! | `timeline.rs` | a delivery's timeline, from its item, its failure records and its commands |
//! | `delivery_commands.rs` | the commands on a delivery: their bodies, times and refusals |
//! | `command_log.rs` | the command log: idempotency by command id, the audit record, one transaction with the effect |
//! | `audit.rs` | one command, the commands of a day |
//! | `templates.rs` | the template versions and their previews |
//! | `settings.rs` | the runtime settings and template activation |
//! | `queues.rs` | the dead-letter queues and their redrive |
//! | `preferences.rs` | a customer's own preferences and their deliveries not yet sent |
//! | `suppressions.rs` | the suppression list: its entries, adding and removing them |
//! | `corrections.rs` | corrections of settled bills: the record, the corrected invoice, the send |
//!
//! The same API on a loopback port, for local runs and `billingctl`'s tests, is the
//! `admin-local` tool crate (`cargo run -p admin-local -- 8080`); it is not part of this
//! function.

pub mod access;
mod audit;
pub mod command_log;
pub mod corrections;
mod delivery_commands;
pub mod http;
pub mod identity;
pub mod preferences;
pub mod queues;
mod reads;
pub mod roles;
mod settings;
pub mod suppressions;
mod templates;
pub mod timeline;

use adapters::catalog_store::CatalogStore;
use adapters::corrections::CorrectionStore;
use adapters::customers::CustomerStore;
use adapters::cycles::CycleStore;
use adapters::data_bucket::DataBucket;
use adapters::deliveries::DeliveryStore;
use adapters::failures::FailureLog;
use adapters::keyring::PiiKeys;
use adapters::settings::SettingsStore;
use adapters::suppressions::SuppressionStore;
use adapters::{ConfigError, Vars};
use aws_config::SdkConfig;
use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use chrono::{DateTime, Utc};
use domain::{CustomerId, Cycle};
use lambda_runtime::LambdaEvent;

use crate::access::{Endpoint, Found};
use crate::command_log::CommandLog;
pub use crate::delivery_commands::{DELIVERY_COMMANDS, MAX_SCHEDULE_AHEAD_DAYS};
pub use crate::http::{ApiError, Caller, Request, Response};
pub use crate::reads::{DEFAULT_PAGE, FUNNEL_CONCURRENCY, LINK_TTL, MAX_PAGE};
use crate::roles::RoleStore;

/// What the routes need, built once at cold start ([`Deps::load`]).
pub struct Deps {
    pub cycles: CycleStore,
    pub deliveries: DeliveryStore,
    pub customers: CustomerStore,
    pub failures: FailureLog,
    pub bucket: DataBucket,
    pub commands: CommandLog,
    /// The platform's roles: the mapping in `ADMIN_TABLE` and the bootstrap administrator.
    pub roles: RoleStore,
    /// The contact-data keyring (to mask contact data), from the secret named by
    /// `PII_KEYS_SECRET`.
    pub keys: PiiKeys,
    /// Every embedded invoice template version, validated at start.
    pub templates: invoice::Templates,
    /// The version a settlement pins unless its input or the operators' setting names
    /// another (`TEMPLATE_VERSION`).
    pub default_template: String,
    /// The operators' runtime settings (in `ADMIN_TABLE`).
    pub settings: SettingsStore,
    /// The deployment's channel policy (`CHANNEL_POLICY`), in force until a setting is made.
    pub default_policy: domain::dispatch::ChannelPolicy,
    pub sqs: aws_sdk_sqs::Client,
    /// The dead-letter queues operators look at and redrive.
    pub queues: Vec<queues::DeadLetterQueue>,
    /// The send queues whose depth the funnel shows (`EMAIL_QUEUE_URL`, `SMS_QUEUE_URL`).
    pub send_queues: reads::SendQueues,
    /// The system quiet window (`QUIET_WINDOW`, the dispatcher's and the senders' default when
    /// unset): a customer's do-not-disturb slots must leave a slot outside it.
    pub quiet: domain::QuietWindow,
    /// The suppression list (`SUPPRESSION_TABLE`).
    pub suppressions: SuppressionStore,
    /// Corrections of settled bills (`CORRECTIONS_TABLE`; the bills in `BILLS_TABLE`, the
    /// cycle's counters in `CYCLES_TABLE`).
    pub corrections: CorrectionStore,
    /// The published catalog versions a re-rating reads (`CATALOG_TABLE`).
    pub catalogs: CatalogStore,
}

impl Deps {
    /// From `CYCLES_TABLE`, `DELIVERIES_TABLE`, `CUSTOMERS_TABLE`, `FAILURES_TABLE`,
    /// `DATA_BUCKET`, `ADMIN_TABLE`, `PII_KEYS_SECRET` (the keyring's secret, fetched here), `TEMPLATE_VERSION`,
    /// `CHANNEL_POLICY` (`email,sms` when unset), `ADMIN_BOOTSTRAP_PRINCIPAL` (the role that is
    /// always administrator, see [`roles`]), and the dead-letter queues:
    /// `DELIVERY_DLQ_URL`/`_ARN`, `DISPATCH_DLQ_URL`/`_ARN` and
    /// `DISPATCH_CONTINUATION_QUEUE_ARN` (where the dispatch DLQ's messages are redriven), and
    /// `QUIET_WINDOW` (`HH:MM-HH:MM`, `21:00-08:00` when unset), `SUPPRESSION_TABLE`, for
    /// corrections `CORRECTIONS_TABLE`, `BILLS_TABLE` and `CATALOG_TABLE`, and the send queues
    /// `EMAIL_QUEUE_URL` and `SMS_QUEUE_URL` (their depth, in the funnel).
    pub async fn load(sdk: &SdkConfig, vars: &impl Vars) -> Result<Self, ConfigError> {
        let ddb = adapters::dynamodb_client(sdk);
        let keys = PiiKeys::load(sdk, vars).await?;
        Ok(Deps {
            cycles: CycleStore::new(ddb.clone(), vars.required("CYCLES_TABLE")?),
            deliveries: DeliveryStore::new(ddb.clone(), vars.required("DELIVERIES_TABLE")?),
            customers: CustomerStore::new(ddb.clone(), vars.required("CUSTOMERS_TABLE")?),
            failures: FailureLog::new(ddb.clone(), vars.required("FAILURES_TABLE")?),
            bucket: DataBucket::new(adapters::s3_client(sdk), vars.required("DATA_BUCKET")?),
            commands: CommandLog::new(ddb.clone(), vars.required("ADMIN_TABLE")?),
            roles: RoleStore::new(
                ddb.clone(),
                vars.required("ADMIN_TABLE")?,
                &vars.required("ADMIN_BOOTSTRAP_PRINCIPAL")?,
            )
            .ok_or_else(|| ConfigError::Invalid {
                name: "ADMIN_BOOTSTRAP_PRINCIPAL",
                reason: "not the ARN of an IAM role or user".into(),
            })?,
            settings: SettingsStore::new(ddb.clone(), vars.required("ADMIN_TABLE")?),
            default_policy: vars.parsed("CHANNEL_POLICY", domain::dispatch::ChannelPolicy::ALL)?,
            sqs: adapters::sqs_client(sdk),
            queues: vec![
                queues::DeadLetterQueue {
                    name: "delivery-dlq",
                    url: vars.required("DELIVERY_DLQ_URL")?,
                    arn: vars.required("DELIVERY_DLQ_ARN")?,
                    destination: None,
                    about: "email and SMS messages received ten times without an answer; RecordFailure turns them into failure records as they arrive, so messages stay here only while it cannot take them. A redrive sends them back to the email and SMS queues",
                },
                queues::DeadLetterQueue {
                    name: "dispatch-dlq",
                    url: vars.required("DISPATCH_DLQ_URL")?,
                    arn: vars.required("DISPATCH_DLQ_ARN")?,
                    destination: Some(vars.required("DISPATCH_CONTINUATION_QUEUE_ARN")?),
                    about: "dispatch runs that failed (the scheduler's invocations after its retries, continuations after three receives). A redrive runs each again through the continuation queue; a run of an old slot enqueues what is due now",
                },
            ],
            send_queues: reads::SendQueues {
                email: vars.required("EMAIL_QUEUE_URL")?,
                sms: vars.required("SMS_QUEUE_URL")?,
            },
            keys,
            templates: invoice::Templates::embedded().map_err(|e| ConfigError::Invalid {
                name: "templates",
                reason: e.to_string(),
            })?,
            default_template: vars.required("TEMPLATE_VERSION")?,
            quiet: vars.parsed("QUIET_WINDOW", domain::QuietWindow::default_korea())?,
            suppressions: SuppressionStore::new(ddb.clone(), vars.required("SUPPRESSION_TABLE")?),
            corrections: CorrectionStore::new(
                ddb.clone(),
                vars.required("CORRECTIONS_TABLE")?,
                vars.required("BILLS_TABLE")?,
                vars.required("CYCLES_TABLE")?,
            ),
            catalogs: CatalogStore::new(ddb.clone(), vars.required("CATALOG_TABLE")?),
        })
    }
}

/// The Lambda handler: never an invocation error for a request (a bad one is a 4xx, ours a 500).
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, lambda_runtime::Error> {
    let mut req = Request::from_event(&event.payload);
    if req.request_id.is_empty() {
        req.request_id = event.context.request_id.clone();
    }
    Ok(serve(deps, &req, Utc::now()).await.into_event())
}

/// Answers one request at `now`.
pub async fn serve(deps: &Deps, req: &Request, now: DateTime<Utc>) -> Response {
    let answer = route(deps, req, now).await;
    // Logged: the route's pattern and a standard method, never the path or the method as
    // sent (they hold what the caller typed).
    let (method, path) = (http::shown_method(&req.method), route_label(req));
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            match &e {
                ApiError::Internal(cause) => {
                    let cause = domain::text::reason(cause);
                    tracing::error!(request_id = %req.request_id, method, route = path, %cause, "request failed")
                }
                other => {
                    let error = domain::text::bounded(&other.to_string(), http::MAX_MESSAGE_BYTES).into_owned();
                    tracing::info!(request_id = %req.request_id, method, route = path, status = other.status(), %error, "request refused")
                }
            }
            e.into_response(&req.request_id)
        }
    };
    let caller = req.caller.as_ref().map_or_else(|| "none".to_owned(), Caller::masked);
    tracing::info!(request_id = %req.request_id, method, route = path, status = response.status, %caller, "request");
    response
}

/// The pattern of the route a request is for (`/cycles/{cycle}`), or what kind of miss it is.
fn route_label(req: &Request) -> &'static str {
    match access::find(&req.method, &req.segments()) {
        Found::Route(route, _) => route.pattern,
        Found::WrongMethod => "(a route, another method)",
        Found::Nothing => "(no route)",
    }
}

async fn route(deps: &Deps, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let caller = req.caller.as_ref().ok_or_else(|| {
        ApiError::Forbidden("no IAM identity in the request: the function URL must use AWS_IAM".into())
    })?;
    let segments = req.segments();
    let (route, params) = match access::find(&req.method, &segments) {
        Found::Route(route, params) => (route, params),
        Found::WrongMethod => {
            return Err(ApiError::MethodNotAllowed {
                method: req.method.clone(),
            });
        }
        Found::Nothing => {
            return Err(ApiError::not_found(
                "unknown-route",
                "no such route (the routes are in docs/admin-api.md)",
            ));
        }
    };
    // The one role check: the table's role for the route against the caller's.
    let principal = caller.principal().ok_or_else(roles::no_principal)?;
    let role = match deps.roles.role_of(&principal).await? {
        Some(role) if role >= route.needs => role,
        has => {
            return Err(roles::refusal(
                route.method,
                route.pattern,
                route.needs,
                &principal,
                has,
            ));
        }
    };
    if route.method == "GET" {
        tracing::info!(request_id = %req.request_id, route = route.pattern, role = role.as_str(), caller = %principal.masked(), "read");
    }
    let p = |name: &str| params.get(name);
    match route.endpoint {
        Endpoint::Cycles => reads::cycles(deps, req, now).await,
        Endpoint::Cycle => reads::cycle_status(deps, parse_cycle(p("cycle"))?).await,
        Endpoint::Funnel => reads::funnel(deps, parse_cycle(p("cycle"))?, now).await,
        Endpoint::Failures => reads::failures(deps, parse_cycle(p("cycle"))?, req).await,
        Endpoint::Delivery => {
            reads::delivery(deps, parse_cycle(p("cycle"))?, &parse_customer(p("customer"))?, now).await
        }
        Endpoint::DeliveryCommand(verb) => {
            let (cycle, customer) = (parse_cycle(p("cycle"))?, parse_customer(p("customer"))?);
            let command = move |given| async move {
                delivery_commands::delivery_command(deps, verb, cycle, &customer, &given).await
            };
            deps.commands.unless_replayed(req, caller, now, command).await
        }
        Endpoint::Command => audit::command(deps, p("command_id")).await,
        Endpoint::Audit => audit::audit(deps, req).await,
        Endpoint::Templates => templates::templates(deps).await,
        Endpoint::Preview => templates::preview(deps, p("version"), req),
        Endpoint::Activate => {
            let version = p("version");
            let command = move |given| async move { settings::activate(deps, version, &given).await };
            deps.commands.unless_replayed(req, caller, now, command).await
        }
        Endpoint::Settings => settings::list_settings(deps).await,
        Endpoint::Setting => settings::get_setting(deps, p("name")).await,
        Endpoint::PutSetting => {
            let name = p("name");
            let command = move |given| async move { settings::put_setting(deps, name, &given).await };
            deps.commands.unless_replayed(req, caller, now, command).await
        }
        Endpoint::Queues => queues::list_queues(deps).await,
        Endpoint::Queue => queues::get_queue(deps, p("queue")).await,
        Endpoint::Redrive => {
            let name = p("queue");
            let command = move |given| async move { queues::redrive(deps, name, &given).await };
            deps.commands.unless_replayed(req, caller, now, command).await
        }
        Endpoint::Roles => roles::list(deps, &principal, role).await,
        Endpoint::SetRole => {
            let target = roles::principal_in_path(p("principal"));
            let target = target.as_str();
            let command = move |given| async move { roles::set(deps, target, &given).await };
            deps.commands.unless_replayed(req, caller, now, command).await
        }
        Endpoint::Preferences => {
            let customer = parse_customer(p("customer"))?;
            // The replay check's digest takes the contact values sealed, never in clear.
            let keyed = preferences::keyed_request(deps, req, &customer).await;
            let command = move |given| async move { preferences::set_preferences(deps, &customer, req, &given).await };
            deps.commands.unless_replayed(&keyed, caller, now, command).await
        }
        // Boxed: the router's future stays the size it was (a handler may run on a deep stack,
        // e.g. a test's hook inside a sender).
        Endpoint::Suppressions => Box::pin(suppressions::list(deps, req)).await,
        Endpoint::Suppress => {
            Box::pin(async move {
                // The replay check's digest takes the address hashed, never in clear.
                let keyed = suppressions::keyed_request(deps, req).await;
                let command = move |given| async move { suppressions::add(deps, req, &given).await };
                deps.commands.unless_replayed(&keyed, caller, now, command).await
            })
            .await
        }
        Endpoint::Corrections => {
            corrections::list(deps, parse_cycle(p("cycle"))?, &parse_customer(p("customer"))?).await
        }
        Endpoint::Correct => {
            let (cycle, customer) = (parse_cycle(p("cycle"))?, parse_customer(p("customer"))?);
            Box::pin(async move {
                let command = move |given| async move { corrections::correct(deps, cycle, &customer, &given).await };
                deps.commands.unless_replayed(req, caller, now, command).await
            })
            .await
        }
        Endpoint::Unsuppress => {
            let hash = p("hash").to_owned();
            Box::pin(async move {
                let command = |given| async move { suppressions::remove(deps, &hash, &given).await };
                deps.commands.unless_replayed(req, caller, now, command).await
            })
            .await
        }
    }
}

fn parse_cycle(s: &str) -> Result<Cycle, ApiError> {
    s.parse::<Cycle>()
        .map_err(|_| ApiError::bad("invalid-cycle", "cycle must be YYYY-MM"))
}

fn parse_customer(s: &str) -> Result<CustomerId, ApiError> {
    CustomerId::new(s).map_err(|e| ApiError::bad("invalid-customer-id", e.to_string()))
}
