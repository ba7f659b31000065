//! `upload catalog|customers|usage FILE`: the file goes to its drop-zone key in the stack's
//! data bucket (`incoming/…`, docs/ingest.md), in parts when it is big; then billingctl
//! waits for the ingest report of that very object (`ingest-reports/<key without
//! incoming/>.json` whose `etag` is the uploaded object's) and prints it.
//!
//! Nothing of the file's content is printed: the report names lines, fields and reasons,
//! never a value (ingest writes it so), and the human view shows only its known fields.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use domain::Cycle;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::api::Failure;
use crate::cli::{UploadArgs, UploadKind};
use crate::output::{Output, table, text};
use crate::stack::{Stack, s3_client};

const MIB: u64 = 1024 * 1024;
/// Files over this many parts (`--part-mib`, 16 MiB by default: 64 MiB) go in parts
/// (CreateMultipartUpload): a million-customer export is about 350 MB.
const MULTIPART_ABOVE_PARTS: u64 = 4;
/// S3's limit of parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 4;
/// How often the report key is read while waiting.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Runs `upload`.
pub(crate) async fn upload(sdk: &SdkConfig, stack: &Stack, out: Output, args: UploadArgs) -> Result<(), Failure> {
    let key = drop_key(&args)?;
    let bucket = stack.output("DataBucketName")?.to_owned();
    let report_key = report_key(&key);
    let size = tokio::fs::metadata(&args.file)
        .await
        .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?
        .len();
    let s3 = s3_client(sdk);
    // A report already at the key belongs to an earlier upload of the same key (maybe of the
    // same content, so of the same ETag): the one to wait for is a new report object.
    let earlier = report_etag(&s3, &bucket, &report_key).await?;
    let part_size = args.part_mib * MIB;
    let etag = if size > MULTIPART_ABOVE_PARTS * part_size {
        put_in_parts(&s3, &bucket, &key, &args.file, size, part_size).await?
    } else {
        put_whole(&s3, &bucket, &key, &args.file).await?
    };
    let uploaded = json!({
        "bucket": bucket, "key": key, "etag": etag, "bytes": size,
        "report": format!("s3://{bucket}/{report_key}"),
    });
    if args.no_wait {
        out.print(
            &uploaded,
            format!(
                "uploaded {} ({size} bytes) to s3://{bucket}/{key}, ETag {etag}",
                args.file.display()
            ),
        );
        return Ok(());
    }
    eprintln!(
        "billingctl: uploaded {} ({size} bytes) to s3://{bucket}/{key}; waiting up to {} s for its ingest report",
        args.file.display(),
        args.timeout
    );
    let Some(report) = wait_for_report(&s3, &bucket, &report_key, &etag, earlier.as_deref(), args.timeout).await?
    else {
        return Err(Failure::Exit {
            code: 7,
            message: format!(
                "no ingest report for s3://{bucket}/{key} (ETag {etag}) within {} s: the file is uploaded and \
                 ingest may still be running (the executions of the stack's IngestStateMachineArn); its report \
                 will be s3://{bucket}/{report_key}",
                args.timeout
            ),
        });
    };
    out.print(&report, show_report(&report, &format!("s3://{bucket}/{report_key}")));
    outcome(&report)
}

/// The drop-zone key of the file: `incoming/catalog/<name>.json`,
/// `incoming/customers/<name>.jsonl`, `incoming/usage/<cycle>/shard-<NNNNN>.csv`.
pub(crate) fn drop_key(args: &UploadArgs) -> Result<String, Failure> {
    let file_name = args.file.file_name().and_then(|n| n.to_str());
    match args.kind {
        UploadKind::Catalog | UploadKind::Customers => {
            let (folder, ext) = match args.kind {
                UploadKind::Catalog => ("catalog", ".json"),
                _ => ("customers", ".jsonl"),
            };
            if args.cycle.is_some() || args.shard.is_some() {
                return Err(usage("--cycle and --shard are for usage files".into()));
            }
            let name = args
                .name
                .as_deref()
                .or(file_name)
                .ok_or_else(|| usage("the file has no name: give --name".into()))?;
            if name.contains('/') || name.len() <= ext.len() || !name.ends_with(ext) {
                return Err(usage(format!(
                    "a {folder} object's name ends in {ext} and has no '/': give --name NAME{ext}"
                )));
            }
            Ok(format!("incoming/{folder}/{name}"))
        }
        UploadKind::Usage => {
            if args.name.is_some() {
                return Err(usage(
                    "a usage file's name is its shard's (shard-NNNNN.csv): give --cycle and --shard instead of --name"
                        .into(),
                ));
            }
            let shard = match args.shard {
                Some(s) => s,
                None => file_name
                    .and_then(shard_of_name)
                    .ok_or_else(|| usage("the file's name is not shard-NNNNN.csv: give --shard N".into()))?,
            };
            let cycle = match &args.cycle {
                Some(c) => Cycle::from_str(c).map_err(|_| usage("--cycle is YYYY-MM with a month 01-12".into()))?,
                None => args
                    .file
                    .parent()
                    .and_then(Path::file_name)
                    .and_then(|d| d.to_str())
                    .and_then(|d| Cycle::from_str(d).ok())
                    .ok_or_else(|| usage("the file's folder is not a cycle (YYYY-MM): give --cycle YYYY-MM".into()))?,
            };
            Ok(format!("incoming/usage/{cycle}/shard-{shard:05}.csv"))
        }
    }
}

/// The shard of a file named `shard-NNNNN.csv`.
fn shard_of_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("shard-")?.strip_suffix(".csv")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `ingest-reports/<key without incoming/>.json`.
pub(crate) fn report_key(key: &str) -> String {
    format!("ingest-reports/{}.json", key.strip_prefix("incoming/").unwrap_or(key))
}

fn usage(message: String) -> Failure {
    Failure::Exit { code: 2, message }
}

fn s3_failure(what: &str, key: &str, e: impl std::error::Error) -> Failure {
    Failure::Other(format!("S3 {what} {key}: {}", DisplayErrorContext(e)))
}

/// An S3 call's failure; a refusal (403) names the permission `upload` needs (exit 6).
fn s3_error<E>(what: &str, key: &str, e: SdkError<E, HttpResponse>) -> Failure
where
    E: std::error::Error + Send + Sync + aws_smithy_runtime_api::client::result::CreateUnhandledError + 'static,
{
    if e.raw_response().map(|r| r.status().as_u16()) == Some(403) {
        let needs = if key.starts_with("incoming/") {
            "s3:PutObject on incoming/*"
        } else {
            "s3:GetObject on ingest-reports/* and s3:ListBucket on the bucket (without it a missing report is a 403)"
        };
        return Failure::Exit {
            code: 6,
            message: format!("S3 {what} {key}: access denied; upload needs {needs} (docs/deploy.md, Verify)"),
        };
    }
    s3_failure(what, key, e.into_service_error())
}

/// The ETag of the report object at `key`, if there is one.
async fn report_etag(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<String>, Failure> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(head.e_tag().map(str::to_owned)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) => Err(s3_error("HeadObject", key, e)),
    }
}

async fn put_whole(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, file: &Path) -> Result<String, Failure> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(|e| s3_error("PutObject", key, e))?;
    put.e_tag()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Other(format!("S3 PutObject {key}: the answer has no ETag")))
}

/// A multipart upload, `PARTS_IN_FLIGHT` parts at a time; aborted when a part fails, so no
/// half-uploaded object is left to be billed or ingested.
async fn put_in_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: &Path,
    size: u64,
    part_size: u64,
) -> Result<String, Failure> {
    let part_size = part_size.max(size.div_ceil(MAX_PARTS));
    let parts = size.div_ceil(part_size);
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error("CreateMultipartUpload", key, e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| Failure::Other(format!("S3 CreateMultipartUpload {key}: the answer has no upload id")))?
        .to_owned();
    eprintln!(
        "billingctl: uploading {size} bytes in {parts} parts of {} MiB",
        part_size.div_ceil(MIB)
    );
    let result = upload_parts(s3, bucket, key, file, &upload_id, size, part_size, parts).await;
    let completed = match result {
        Ok(c) => c,
        Err(e) => {
            // Best effort: the upload's parts are dropped; the failure reported is the part's.
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            return Err(e);
        }
    };
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .map_err(|e| s3_error("CompleteMultipartUpload", key, e))?;
    done.e_tag()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Other(format!("S3 CompleteMultipartUpload {key}: the answer has no ETag")))
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: &Path,
    upload_id: &str,
    size: u64,
    part_size: u64,
    parts: u64,
) -> Result<Vec<CompletedPart>, Failure> {
    let mut running = tokio::task::JoinSet::new();
    let mut done = Vec::with_capacity(parts as usize);
    let mut next = 1u64;
    while next <= parts || !running.is_empty() {
        while next <= parts && running.len() < PARTS_IN_FLIGHT {
            let (s3, bucket, key, file, upload_id) = (
                s3.clone(),
                bucket.to_owned(),
                key.to_owned(),
                file.to_owned(),
                upload_id.to_owned(),
            );
            let number = next;
            let offset = (number - 1) * part_size;
            let len = part_size.min(size - offset);
            running.spawn(async move {
                let mut f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
                let mut buf = vec![0u8; len as usize];
                f.read_exact(&mut buf).await.map_err(|e| {
                    usage(format!(
                        "cannot read {} (did it change while uploading?): {e}",
                        file.display()
                    ))
                })?;
                let part = s3
                    .upload_part()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(number as i32)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPart", &key, e))?;
                Ok::<_, Failure>(
                    CompletedPart::builder()
                        .part_number(number as i32)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                )
            });
            next += 1;
        }
        match running.join_next().await {
            Some(Ok(part)) => done.push(part?),
            Some(Err(e)) => return Err(Failure::Other(format!("uploading a part: {e}"))),
            None => break,
        }
    }
    done.sort_by_key(|p| p.part_number());
    Ok(done)
}

/// Reads the report key every `POLL_EVERY` until a report object other than `earlier` names
/// the uploaded object's ETag, or `timeout_secs` pass.
async fn wait_for_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: &str,
    earlier: Option<&str>,
    timeout_secs: u64,
) -> Result<Option<Value>, Failure> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let polls = timeout_secs / POLL_EVERY.as_secs() + 2;
    for _ in 0..polls {
        if let Some(report) = read_report(s3, bucket, key, earlier).await?
            && same_etag(text(&report["etag"]).as_str(), etag)
        {
            return Ok(Some(report));
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    Ok(None)
}

/// The report at `key`, unless it is missing or is the object `earlier`.
async fn read_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    earlier: Option<&str>,
) -> Result<Option<Value>, Failure> {
    let got = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => got,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(s3_error("GetObject", key, e)),
    };
    if earlier.is_some() && got.e_tag() == earlier {
        return Ok(None);
    }
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| Failure::Other(format!("S3 GetObject {key}: reading the body: {e}")))?
        .into_bytes();
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| Failure::Other(format!("the ingest report s3://{bucket}/{key} is not JSON")))
}

/// ETags compared without their quotes (S3 answers `"…"`; an S3 event carries it bare).
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// The exit of `upload` for a report: 0 applied, 3 applied with rejections, 4 rejected.
fn outcome(report: &Value) -> Result<(), Failure> {
    match report["status"].as_str() {
        Some("applied") => Ok(()),
        Some("applied_with_rejections") => Err(Failure::Exit {
            code: 3,
            message: format!(
                "{} line(s) rejected (listed above); the rest is applied",
                text(&report["rejected_lines"])
            ),
        }),
        Some("rejected") => Err(Failure::Exit {
            code: 4,
            message: "the file was rejected; nothing of it is applied".into(),
        }),
        _ => Err(Failure::Other("the ingest report has no known status".into())),
    }
}

/// The human view: a summary line, what the file was about, notes, the rejections.
pub(crate) fn show_report(r: &Value, location: &str) -> String {
    let status = match r["status"].as_str() {
        Some("applied") => "applied",
        Some("applied_with_rejections") => "applied with rejections",
        Some("rejected") => "REJECTED",
        _ => "unknown status",
    };
    let mut out = format!(
        "{} {}: {status}: {} lines, {} applied, {} unchanged, {} rejected",
        text(&r["kind"]),
        text(&r["file"]),
        text(&r["lines"]),
        text(&r["applied"]),
        text(&r["unchanged"]),
        text(&r["rejected_lines"]),
    );
    if !r["file_error"].is_null() {
        out.push_str(&format!(
            "\nfile rejected: {}: {}",
            text(&r["file_error"]["field"]),
            text(&r["file_error"]["reason"])
        ));
    }
    if !r["catalog_version"].is_null() {
        out.push_str(&format!("\ncatalog version {}", text(&r["catalog_version"])));
    }
    if !r["cycle"].is_null() {
        out.push_str(&format!(
            "\ncycle {}, shard {}: {}",
            text(&r["cycle"]),
            text(&r["shard"]),
            text(&r["usage_key"])
        ));
    }
    if let Some(shards) = r["shards"].as_array().filter(|s| !s.is_empty()) {
        let list: Vec<String> = shards.iter().map(text).collect();
        out.push_str(&format!("\nshards touched: {}", list.join(",")));
    }
    for note in r["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nnote: {}", text(note)));
    }
    out.push_str(&format!(
        "\nexecution {}, {} .. {}",
        text(&r["execution"]),
        text(&r["started_at"]),
        text(&r["finished_at"])
    ));
    let rejections = r["rejections"].as_array().cloned().unwrap_or_default();
    if !rejections.is_empty() {
        let rows: Vec<Vec<String>> = rejections
            .iter()
            .map(|x| vec![text(&x["line"]), text(&x["field"]), text(&x["reason"])])
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["LINE", "FIELD", "REASON"], &rows));
    }
    if r["rejections_truncated"].as_u64().is_some_and(|n| n > 0) {
        out.push_str(&format!(
            "\n… and {} more rejected lines, not listed in the report",
            text(&r["rejections_truncated"])
        ));
    }
    out.push_str(&format!("\nreport: {location}"));
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn args(kind: UploadKind, file: &str) -> UploadArgs {
        UploadArgs {
            kind,
            file: PathBuf::from(file),
            cycle: None,
            shard: None,
            name: None,
            timeout: 1,
            no_wait: false,
            part_mib: 16,
        }
    }

    fn code(r: Result<String, Failure>) -> u8 {
        r.err().map(|f| f.exit_code()).unwrap_or(0)
    }

    #[test]
    fn keys_of_the_drop_zone() {
        assert_eq!(
            drop_key(&args(UploadKind::Catalog, "catalog/2026-v1.json"))
                .ok()
                .unwrap(),
            "incoming/catalog/2026-v1.json"
        );
        assert_eq!(
            drop_key(&args(UploadKind::Customers, "/x/crm-2026-11.jsonl"))
                .ok()
                .unwrap(),
            "incoming/customers/crm-2026-11.jsonl"
        );
        assert_eq!(
            drop_key(&args(UploadKind::Usage, "out/usage/2026-11/shard-00003.csv"))
                .ok()
                .unwrap(),
            "incoming/usage/2026-11/shard-00003.csv"
        );
        let mut a = args(UploadKind::Usage, "u.csv");
        a.cycle = Some("2026-12".into());
        a.shard = Some(12);
        assert_eq!(drop_key(&a).ok().unwrap(), "incoming/usage/2026-12/shard-00012.csv");
        let mut a = args(UploadKind::Customers, "export.txt");
        a.name = Some("crm.jsonl".into());
        assert_eq!(drop_key(&a).ok().unwrap(), "incoming/customers/crm.jsonl");
    }

    #[test]
    fn what_cannot_be_placed_is_a_usage_error() {
        assert_eq!(code(drop_key(&args(UploadKind::Catalog, "catalog.yaml"))), 2);
        assert_eq!(code(drop_key(&args(UploadKind::Customers, "crm.json"))), 2);
        assert_eq!(code(drop_key(&args(UploadKind::Usage, "usage/2026-11/u.csv"))), 2);
        assert_eq!(
            code(drop_key(&args(UploadKind::Usage, "usage/2026-13/shard-00001.csv"))),
            2
        );
        assert_eq!(code(drop_key(&args(UploadKind::Usage, "shard-00001.csv"))), 2);
        let mut a = args(UploadKind::Usage, "usage/2026-11/shard-00001.csv");
        a.cycle = Some("11-2026".into());
        assert_eq!(code(drop_key(&a)), 2);
        let mut a = args(UploadKind::Customers, "crm.jsonl");
        a.name = Some("a/b.jsonl".into());
        assert_eq!(code(drop_key(&a)), 2);
    }

    #[test]
    fn report_keys_and_etags() {
        assert_eq!(
            report_key("incoming/usage/2026-11/shard-00003.csv"),
            "ingest-reports/usage/2026-11/shard-00003.csv.json"
        );
        assert!(same_etag("\"abc-2\"", "abc-2"));
        assert!(!same_etag("\"abc\"", "\"abd\""));
    }

    #[test]
    fn the_report_shows_lines_fields_and_reasons() {
        let r = json!({"file": "incoming/customers/crm.jsonl", "etag": "\"e\"", "kind": "customers",
            "status": "applied_with_rejections", "lines": 10, "applied": 8, "unchanged": 1, "rejected_lines": 1,
            "rejections": [{"line": 7, "field": "dnd", "reason": "leaves no allowed slot"}],
            "rejections_truncated": 0, "notes": ["a UTF-8 byte-order mark was skipped"], "shards": [0, 1]});
        let shown = show_report(&r, "s3://b/ingest-reports/customers/crm.jsonl.json");
        assert!(shown.starts_with("customers incoming/customers/crm.jsonl: applied with rejections: 10 lines"));
        assert!(
            shown.contains("LINE  FIELD  REASON\n7     dnd    leaves no allowed slot"),
            "{shown}"
        );
        assert!(shown.contains("note: a UTF-8 byte-order mark was skipped"));
        assert_eq!(outcome(&r).err().map(|f| f.exit_code()), Some(3));
        assert_eq!(
            outcome(&json!({"status": "applied"})).err().map(|f| f.exit_code()),
            None
        );
        assert_eq!(
            outcome(&json!({"status": "rejected"})).err().map(|f| f.exit_code()),
            Some(4)
        );
    }
}
