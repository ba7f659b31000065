//! `lambda-runner`: the Lambda service for a stack deployed to the local emulator.
//!
//! moto stores the functions CloudFormation creates but runs code only in Docker. The
//! runner fetches each function's configuration and deployment package from the emulator,
//! runs its `bootstrap` as the `provided.al2023` runtime does ([`sandbox`]), registers every
//! function's name with the emulator's Lambda router (so that `Invoke` from Step Functions,
//! EventBridge targets or `aws lambda invoke` reaches it), and polls the functions' SQS event
//! source mappings ([`poller`]). Instances run on a virtual clock ([`clock`]) that
//! `lambda-runner slots` moves through the dispatch schedule ([`slots`]).
//!
//! The one deviation from Lambda: the functions get `AWS_ENDPOINT_URL` (the emulator) and
//! dummy credentials.

pub mod clock;
pub mod discover;
pub mod poller;
pub mod sandbox;
pub mod slots;
pub mod zip;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::discover::Mapping;
use crate::poller::MappingStats;
use crate::sandbox::{Launch, Outcome, Pool};

/// What `serve` runs and how.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub stack: Option<String>,
    pub functions: Vec<String>,
    /// Instances per function at most (concurrent invocations of one function).
    pub instances: usize,
    /// The virtual clock's file; `None` runs the functions on the real clock.
    pub clock_file: Option<PathBuf>,
    /// Where packages are unpacked and logs written.
    pub work_dir: PathBuf,
    /// How often the event source mappings are listed again.
    pub refresh: Duration,
}

/// The default clock file of a stack (shared by `serve` and `slots`).
pub fn default_clock_file(stack: Option<&str>) -> PathBuf {
    std::env::temp_dir()
        .join("lambda-runner")
        .join(stack.unwrap_or("functions"))
        .join("clock")
}

/// The default work directory of a stack.
pub fn default_work_dir(stack: Option<&str>) -> PathBuf {
    std::env::temp_dir()
        .join("lambda-runner")
        .join(stack.unwrap_or("functions"))
}

async fn answer(pools: Arc<HashMap<String, Arc<Pool>>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let name = match (req.method(), req.uri().path().strip_prefix("/invoke/")) {
        (&Method::POST, Some(n)) if !n.is_empty() && !n.contains('/') => n.to_owned(),
        _ => return text(StatusCode::NOT_FOUND, "POST /invoke/{function_name}"),
    };
    let Some(pool) = pools.get(&name).cloned() else {
        return text(StatusCode::NOT_FOUND, "no such function in this runner");
    };
    let payload = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "reading the payload failed"),
    };
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    let (body, error) = match pool.invoke(payload).await {
        Outcome::Ok(body) => (body, false),
        Outcome::Err { body, .. } => (body, true),
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("X-Amz-Executed-Version", "$LATEST");
    if error {
        builder = builder.header("X-Amz-Function-Error", "Unhandled");
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn text(status: StatusCode, t: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(t.as_bytes())));
    *r.status_mut() = status;
    r
}

/// A mapping being polled.
struct Polled {
    mapping: Mapping,
    stop: tokio::sync::watch::Sender<bool>,
    stats: Arc<MappingStats>,
}

/// Serves until interrupted (SIGINT or SIGTERM): prints one `ready` line on stdout once every
/// function is registered with the emulator.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let endpoint = discover::endpoint()?;
    let sdk = local_aws::sdk_config_for(&endpoint).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| local_aws::REGION.to_owned());
    let (names, template) = match &opts.stack {
        Some(stack) => {
            let fns = discover::stack_functions(&sdk, stack).await?;
            let template = discover::stack_template(&sdk, stack).await?;
            (
                fns.into_iter().map(|(l, p)| (Some(l), p)).collect::<Vec<_>>(),
                Some(template),
            )
        }
        None => (opts.functions.iter().map(|f| (None, f.clone())).collect(), None),
    };
    anyhow::ensure!(!names.is_empty(), "no function to serve: give --stack or --function");
    std::fs::create_dir_all(&opts.work_dir).with_context(|| format!("creating {}", opts.work_dir.display()))?;
    let logs = opts.work_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let clock = match &opts.clock_file {
        Some(path) => Some((Clock::open(path)?, clock::faketime_lib()?)),
        None => None,
    };
    let specs = discover::functions(&sdk, &endpoint, &names, template.as_ref(), &opts.work_dir).await?;
    let launch = Arc::new(Launch {
        endpoint: endpoint.clone(),
        region: region.clone(),
        clock,
        logs: logs.clone(),
    });
    let pools: Arc<HashMap<String, Arc<Pool>>> = Arc::new(
        specs
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(Pool::new(s, launch.clone(), opts.instances))))
            .collect(),
    );
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("listening on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let served = pools.clone();
    let server = tokio::spawn(local_aws::http::serve(listener, "lambda-runner", move |req| {
        answer(served.clone(), req)
    }));
    let emulator = local_aws::Emulator::external(&endpoint);
    let mut registered = Vec::new();
    for name in pools.keys() {
        emulator
            .register_lambda_route(name, &format!("http://{addr}/invoke/{name}"))
            .await
            .with_context(|| format!("registering {name} with the emulator's Lambda router"))?;
        registered.push(name.clone());
    }
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut polled: BTreeMap<String, Polled> = BTreeMap::new();
    refresh(&lambda, &sqs, &pools, &region, opts.instances, &mut polled).await?;
    let mut by_function: Vec<String> = pools
        .values()
        .map(|p| match &p.spec.logical_id {
            Some(l) => format!("{} ({l})", p.spec.name),
            None => p.spec.name.clone(),
        })
        .collect();
    by_function.sort();
    eprintln!(
        "lambda-runner: {} functions on {} (logs in {}), {} SQS mappings, clock {}",
        pools.len(),
        addr,
        logs.display(),
        polled.len(),
        opts.clock_file
            .as_ref()
            .map_or("real".to_owned(), |p| format!("virtual ({})", p.display()))
    );
    for f in &by_function {
        eprintln!("  {f}");
    }
    println!("ready");

    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut tick = tokio::time::interval(opts.refresh);
    tick.tick().await;
    // Bounded by the signals: runs until the runner is told to stop.
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                if let Err(e) = refresh(&lambda, &sqs, &pools, &region, opts.instances, &mut polled).await {
                    tracing::warn!(error = %format!("{e:#}"), "listing the event source mappings failed");
                }
            }
        }
    }
    for p in polled.values() {
        let _ = p.stop.send(true);
    }
    for name in &registered {
        let _ = emulator.unregister_lambda_route(name).await;
    }
    server.abort();
    for pool in pools.values() {
        pool.stop();
    }
    let mut lines: Vec<String> = pools
        .values()
        .map(|p| {
            use std::sync::atomic::Ordering::Relaxed;
            format!(
                "  {}: {} invocations, {} cold starts, {} errors",
                p.spec.name,
                p.invocations.load(Relaxed),
                p.cold_starts.load(Relaxed),
                p.errors.load(Relaxed)
            )
        })
        .collect();
    lines.sort();
    eprintln!("lambda-runner: stopped\n{}", lines.join("\n"));
    for p in polled.values() {
        use std::sync::atomic::Ordering::Relaxed;
        eprintln!(
            "  mapping {} → {}: {} batches, {} messages deleted, {} left to their visibility timeout",
            p.mapping.queue_arn.rsplit(':').next().unwrap_or_default(),
            p.mapping.function_name,
            p.stats.batches.load(Relaxed),
            p.stats.deleted.load(Relaxed),
            p.stats.kept.load(Relaxed)
        );
    }
    Ok(())
}

/// Starts pollers for new enabled mappings and stops those of mappings gone or disabled.
async fn refresh(
    lambda: &aws_sdk_lambda::Client,
    sqs: &aws_sdk_sqs::Client,
    pools: &HashMap<String, Arc<Pool>>,
    region: &str,
    instances: usize,
    polled: &mut BTreeMap<String, Polled>,
) -> anyhow::Result<()> {
    let mut now = BTreeMap::new();
    for name in pools.keys() {
        for m in discover::mappings(lambda, name).await? {
            if m.enabled {
                now.insert(m.uuid.clone(), m);
            }
        }
    }
    polled.retain(|uuid, p| {
        let keep = now.get(uuid) == Some(&p.mapping);
        if !keep {
            let _ = p.stop.send(true);
        }
        keep
    });
    for (uuid, m) in now {
        if polled.contains_key(&uuid) {
            continue;
        }
        let Some(pool) = pools.get(&m.function_name).cloned() else {
            continue;
        };
        let url = match poller::queue_url(sqs, &m.queue_arn).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(mapping = %uuid, error = %format!("{e:#}"), "the mapping's queue is not there");
                continue;
            }
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stats = Arc::new(MappingStats::default());
        let workers = m.max_concurrency.unwrap_or(instances).clamp(1, instances.max(1));
        let poller = poller::Poller {
            sqs: sqs.clone(),
            pool,
            mapping: m.clone(),
            url,
            region: region.to_owned(),
            stats: stats.clone(),
        };
        for i in 0..workers {
            tokio::spawn(poller.clone().run(i == 0, stopped.clone()));
        }
        tracing::info!(mapping = %uuid, queue = %m.queue_arn, function = %m.function_name, workers, "polling");
        polled.insert(
            uuid,
            Polled {
                mapping: m,
                stop,
                stats,
            },
        );
    }
    Ok(())
}
