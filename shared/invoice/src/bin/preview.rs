//! Renders invoices of any embedded template version to files, to look at
//! them before a version is released, and validates every version.
//!
//! ```text
//! cargo run -p invoice --bin preview -- --version v1 --out out/preview [--sample all]
//! cargo run -p invoice --bin preview -- --version v1 --customer-json bill.json
//! cargo run -p invoice --bin preview -- validate
//! ```
//!
//! For each invoice it writes `<name>.html`, `<name>.subject.txt` and
//! `<name>.sms.txt` (the text message with an example presigned link in place
//! of the placeholder) and prints the sizes. `--customer-json` takes a JSON
//! file `{"bill": <domain::Bill>, "name": "...", "phone": "..."}`; its name
//! is the file's stem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use invoice::samples::{self, SAMPLE_KEYS, Sample};
use invoice::{DEFAULT_GZIP_LEVEL, Gzip, LINK_PLACEHOLDER, MAX_LINK_BYTES, Templates, euc_kr_len, sms_with_link};

const USAGE: &str = "\
usage: preview [--version V] [--out DIR] [--sample KEY|all] [--customer-json FILE] [--gzip-level N]
       preview validate        (or: preview --validate)

  --version V           template version to render (default: the last embedded one)
  --out DIR             output directory (default: out/preview)
  --sample KEY          family, contract, birthday, prorated, zero-usage or all (default: all)
  --customer-json FILE  render {\"bill\": ..., \"name\": ..., \"phone\": ...} instead of the samples
  --gzip-level N        level for the compressed size shown (default: 6)
  validate              validate every embedded version; exit 1 if one is invalid";

struct Args {
    validate: bool,
    version: Option<String>,
    out: PathBuf,
    sample: Option<String>,
    customer_json: Option<PathBuf>,
    gzip_level: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        validate: false,
        version: None,
        out: PathBuf::from("out/preview"),
        sample: None,
        customer_json: None,
        gzip_level: DEFAULT_GZIP_LEVEL,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "validate" | "--validate" => args.validate = true,
            "--version" => args.version = Some(value("--version")?),
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--sample" => args.sample = Some(value("--sample")?),
            "--customer-json" => args.customer_json = Some(PathBuf::from(value("--customer-json")?)),
            "--gzip-level" => {
                let v = value("--gzip-level")?;
                args.gzip_level = v
                    .parse()
                    .ok()
                    .filter(|l| *l <= 9)
                    .ok_or_else(|| format!("--gzip-level {v:?} is not 0-9"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.sample.is_some() && args.customer_json.is_some() {
        return Err("give --sample or --customer-json, not both".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("preview: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("preview: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.validate {
        return validate();
    }
    let templates = Templates::embedded().map_err(|e| format!("the embedded templates are invalid: {e}"))?;
    let version = match &args.version {
        Some(v) => v.clone(),
        None => templates
            .versions()
            .last()
            .map(str::to_owned)
            .ok_or("no template version")?,
    };
    let renderer = templates.version(&version).map_err(|e| e.to_string())?;
    let to_render = inputs(args)?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;

    let link = samples::example_presigned_url();
    let mut gzip = Gzip::new(args.gzip_level);
    let mut gz = Vec::new();
    println!(
        "template {version} -> {} (example link {} bytes; gzip level {})",
        args.out.display(),
        link.len(),
        args.gzip_level
    );
    println!(
        "{:<12} {:>6} {:>6} {:>8} {:>9} {:>10} {:>10} {:>9}  content hash",
        "invoice", "html", "gzip", "subject", "sms chars", "sms EUC-KR", "+budget", "+link"
    );
    for s in &to_render {
        let r = renderer
            .render_bill(&s.bill, &s.name, &s.phone)
            .map_err(|e| format!("{}: {e}", s.key))?;
        let sent = sms_with_link(&r.sms, &link).map_err(|e| format!("{}: {e}", s.key))?;
        gz.clear();
        gzip.compress(r.html.as_bytes(), &mut gz)
            .map_err(|e| format!("{}: {e}", s.key))?;
        let sms_bytes = euc_kr_len(&r.sms).map_err(|e| format!("{}: {e}", s.key))?;
        let sent_bytes = euc_kr_len(&sent).map_err(|e| format!("{}: {e}", s.key))?;
        write(&args.out, &format!("{}.html", s.key), &r.html)?;
        write(&args.out, &format!("{}.subject.txt", s.key), &r.subject)?;
        write(&args.out, &format!("{}.sms.txt", s.key), &sent)?;
        println!(
            "{:<12} {:>6} {:>6} {:>8} {:>9} {:>10} {:>10} {:>9}  {}",
            s.key,
            r.html.len(),
            gz.len(),
            r.subject.len(),
            r.sms.chars().count(),
            sms_bytes,
            sms_bytes - LINK_PLACEHOLDER.len() + MAX_LINK_BYTES,
            sent_bytes,
            &r.content_hash[..16]
        );
    }
    println!(
        "(sms EUC-KR: the stored text with the placeholder; +budget: as checked at render, the link counted as \
         {MAX_LINK_BYTES} bytes; +link: with the example link, as sent; limit {} bytes)",
        renderer.meta().sms.max_bytes
    );
    Ok(())
}

fn inputs(args: &Args) -> Result<Vec<Sample>, String> {
    if let Some(path) = &args.customer_json {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut s: Sample = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a {{bill, name, phone}} document: {e}", path.display()))?;
        s.key = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "customer".to_owned());
        return Ok(vec![s]);
    }
    let all = samples::all().map_err(|e| e.to_string())?;
    match args.sample.as_deref() {
        None | Some("all") => Ok(all),
        Some(key) => all
            .into_iter()
            .find(|s| s.key == key)
            .map(|s| vec![s])
            .ok_or_else(|| format!("unknown sample {key:?}; known: {}, all", SAMPLE_KEYS.join(", "))),
    }
}

fn write(dir: &Path, name: &str, content: &str) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Loads every embedded version on its own, so that every invalid one is
/// reported, not only the first.
fn validate() -> Result<(), String> {
    let mut bad = 0;
    for src in invoice::embedded_sources() {
        match Templates::from_sources([*src]) {
            Ok(_) => println!("template {}: ok", src.version),
            Err(e) => {
                bad += 1;
                println!("template {}: INVALID: {e}", src.version);
            }
        }
    }
    if bad > 0 {
        return Err(format!("{bad} template version(s) invalid"));
    }
    println!("{} template version(s) valid", invoice::embedded_sources().len());
    Ok(())
}
