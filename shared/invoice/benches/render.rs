//! Per-invoice cost of rendering and compressing, against a hand-written
//! floor: `cargo bench -p invoice --bench render`.
//!
//! Every step runs over the five built-in samples. A round of a step repeats
//! them for about `ROUND_TIME`; the rounds of all steps are interleaved
//! (round 1 of every step, then round 2, …), so that a machine whose speed
//! drifts during the run — a shared VM does — slows every step alike and
//! the ratios stay comparable. The figure is the median over `ROUNDS`
//! rounds of (round time ÷ invoices), with the fastest and slowest round
//! beside it. One thread. Prints a markdown table.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use invoice::samples::{self, Sample};
use invoice::{
    DEFAULT_GZIP_LEVEL, Gzip, InvoiceView, LINK_PLACEHOLDER, Meta, Rendered, Templates, content_hash, floor,
};

const ROUNDS: usize = 11;
const ROUND_TIME: Duration = Duration::from_millis(40);

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// One measured step: `run` makes one pass over the samples.
struct Step<'a> {
    name: String,
    note: String,
    run: Box<dyn FnMut() -> Res + 'a>,
    passes: u32,
    per_invoice_us: Vec<f64>,
}

impl Step<'_> {
    fn median(&self) -> f64 {
        self.per_invoice_us[self.per_invoice_us.len() / 2]
    }
}

fn step<'a>(name: impl Into<String>, note: impl Into<String>, run: impl FnMut() -> Res + 'a) -> Step<'a> {
    Step {
        name: name.into(),
        note: note.into(),
        run: Box::new(run),
        passes: 1,
        per_invoice_us: Vec::with_capacity(ROUNDS),
    }
}

/// tera 1 has no global context: the version's globals go into each
/// render's context, in the same serialisation as the view.
#[derive(serde::Serialize)]
struct Tera1Context<'a> {
    #[serde(flatten)]
    view: &'a InvoiceView,
    meta: &'a Meta,
    template_version: &'a str,
}

/// Busy CPU time of the whole machine, of this process, and stolen by the
/// hypervisor, in clock ticks (Linux `/proc`; `None` elsewhere).
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let steal = *cpu.get(7)?;
    let busy = cpu.iter().take(7).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = me.rsplit_once(") ")?.1.split_whitespace().collect();
    let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((busy, own, steal))
}

fn main() -> Res {
    let started = (Instant::now(), cpu_ticks());
    let samples: Vec<Sample> = samples::all()?;
    let n = samples.len();
    let templates = Templates::embedded()?;
    let v1 = templates.version("v1")?;
    let meta = v1.meta();
    let views: Vec<InvoiceView> = samples
        .iter()
        .map(|s| InvoiceView::new(&s.bill, &s.name, &s.phone))
        .collect();
    let rendered: Vec<Rendered> = views.iter().map(|v| v1.render(v)).collect::<Result<_, _>>()?;
    let html_avg = rendered.iter().map(|r| r.html.len()).sum::<usize>() / n;
    let level = DEFAULT_GZIP_LEVEL;

    // tera 2 on its own: the same v1 templates in a plain Tera, the
    // version's globals bound once, a context from the view per invoice.
    let src = invoice::embedded_sources()[0];
    let mut tera2 = tera::Tera::new();
    tera2.autoescape_on([".html"]);
    tera2.add_raw_templates([
        ("email.html", src.email_html),
        ("subject.txt", src.subject_txt),
        ("sms.txt", src.sms_txt),
    ])?;
    let mut globals = tera::Context::new();
    globals.insert_value("meta", tera::Value::try_from_serializable(meta)?);
    globals.insert_value("template_version", tera::Value::from("v1"));
    globals.insert_value("invoice_url", tera::Value::from(LINK_PLACEHOLDER));
    tera2.global_context().extend(globals);
    let tera2 = &tera2;

    // tera 1.20 with the same email template, unchanged.
    let mut tera1 = tera1::Tera::default();
    tera1.autoescape_on(vec![".html"]);
    tera1.add_raw_template("email.html", src.email_html)?;
    let tera1 = &tera1;
    let context1 = |view: &InvoiceView| {
        tera1::Context::from_serialize(Tera1Context {
            view,
            meta,
            template_version: "v1",
        })
    };
    let (mut same, mut slash_only) = (true, true);
    for (v, r) in views.iter().zip(&rendered) {
        let html = tera1.render("email.html", &context1(v)?)?;
        same &= html == r.html;
        slash_only &= html.replace("&#x2F;", "/") == r.html;
    }
    let tera1_output = match (same, slash_only) {
        (true, _) => "identical output",
        (false, true) => "output identical but for `/` escaped as `&#x2F;`",
        (false, false) => "output differs",
    };

    // gzip sizes at every level (not timed).
    let mut size_at = [0usize; 10];
    let mut buf = Vec::new();
    for (lvl, size) in size_at.iter_mut().enumerate() {
        let mut gz = Gzip::new(lvl as u32);
        for r in &rendered {
            buf.clear();
            gz.compress(r.html.as_bytes(), &mut buf)?;
            *size += buf.len();
        }
        *size /= n;
    }

    let (views, rendered, samples) = (&views, &rendered, &samples);
    let mut steps: Vec<Step> = Vec::new();
    steps.push(step("view model (`InvoiceView::new`)", "masking + formatting", || {
        for s in samples {
            black_box(InvoiceView::new(black_box(&s.bill), &s.name, &s.phone));
        }
        Ok(())
    }));
    let mut bufs = [Vec::new(), Vec::new(), Vec::new()];
    steps.push(step(
        "tera 2.4: context + email + subject + SMS",
        format!("HTML {html_avg} B on average"),
        move || {
            for v in views {
                let ctx = tera::Context::from_serialize(v)?;
                for (name, buf) in ["email.html", "subject.txt", "sms.txt"].iter().zip(bufs.iter_mut()) {
                    buf.clear();
                    tera2.render_to(name, &ctx, &mut *buf)?;
                }
                black_box(&bufs);
            }
            Ok(())
        },
    ));
    let mut buf2 = Vec::new();
    steps.push(step("tera 2.4: context + email only", "", move || {
        for v in views {
            let ctx = tera::Context::from_serialize(v)?;
            buf2.clear();
            tera2.render_to("email.html", &ctx, &mut buf2)?;
            black_box(&buf2);
        }
        Ok(())
    }));
    let mut buf1 = Vec::new();
    steps.push(step(
        "tera 1.20: context + email only",
        format!("same template, {tera1_output}"),
        move || {
            for v in views {
                let ctx = context1(v)?;
                buf1.clear();
                tera1.render_to("email.html", &ctx, &mut buf1)?;
                black_box(&buf1);
            }
            Ok(())
        },
    ));
    let mut out = Rendered::default();
    steps.push(step(
        "`Renderer::render_into`: tera 2 + checks + hash",
        "what rendering costs in the crate",
        move || {
            for v in views {
                v1.render_into(v, &mut out)?;
                black_box(&out);
            }
            Ok(())
        },
    ));
    let mut fl = Rendered::default();
    steps.push(step(
        "hand-written floor: email + subject + SMS",
        "byte-identical to tera (tested)",
        move || {
            for v in views {
                floor::render_into(meta, "v1", v, &mut fl);
                black_box(&fl);
            }
            Ok(())
        },
    ));
    steps.push(step("SHA-256 content hash", "", || {
        for r in rendered {
            black_box(content_hash(&r.template_version, &r.subject, &r.html, &r.sms));
        }
        Ok(())
    }));
    for lvl in [1u32, 6, 9] {
        let size = size_at[lvl as usize];
        let mut out = Vec::with_capacity(8 * 1024);
        steps.push(step(
            format!("gzip level {lvl}, new compressor per invoice"),
            format!("{size} B ({:.0}% of the HTML)", 100.0 * size as f64 / html_avg as f64),
            move || {
                for r in rendered {
                    out.clear();
                    Gzip::new(lvl).compress(r.html.as_bytes(), &mut out)?;
                    black_box(&out);
                }
                Ok(())
            },
        ));
        let mut gz = Gzip::new(lvl);
        let mut out = Vec::with_capacity(8 * 1024);
        steps.push(step(
            format!("gzip level {lvl}, reused compressor"),
            format!("{size} B"),
            move || {
                for r in rendered {
                    out.clear();
                    gz.compress(r.html.as_bytes(), &mut out)?;
                    black_box(&out);
                }
                Ok(())
            },
        ));
    }
    // The pipelines do per invoice what RenderShard does: render, then compress.
    let (mut gz, mut out, mut gz_out) = (Gzip::new(level), Rendered::default(), Vec::new());
    steps.push(step(
        format!("**pipeline**: view + render (incl. hash) + gzip {level} reused"),
        "",
        move || {
            for s in samples {
                let view = InvoiceView::new(&s.bill, &s.name, &s.phone);
                v1.render_into(&view, &mut out)?;
                gz_out.clear();
                gz.compress(out.html.as_bytes(), &mut gz_out)?;
                black_box((&out, &gz_out));
            }
            Ok(())
        },
    ));
    let (mut gz, mut fl, mut gz_out) = (Gzip::new(level), Rendered::default(), Vec::new());
    steps.push(step(
        format!("floor pipeline: view + hand-written + gzip {level} reused + hash"),
        "",
        move || {
            for s in samples {
                let view = InvoiceView::new(&s.bill, &s.name, &s.phone);
                floor::render_into(meta, "v1", &view, &mut fl);
                gz_out.clear();
                gz.compress(fl.html.as_bytes(), &mut gz_out)?;
                black_box(content_hash(&fl.template_version, &fl.subject, &fl.html, &fl.sms));
            }
            Ok(())
        },
    ));

    // Warm up and calibrate the passes per round, then interleave rounds.
    for s in &mut steps {
        let t = Instant::now();
        let mut passes = 0u32;
        while t.elapsed() < ROUND_TIME / 4 || passes < 2 {
            (s.run)()?;
            passes += 1;
        }
        let per_pass = t.elapsed().as_secs_f64() / f64::from(passes);
        s.passes = ((ROUND_TIME.as_secs_f64() / per_pass) as u32).max(1);
    }
    for _ in 0..ROUNDS {
        for s in &mut steps {
            let t = Instant::now();
            for _ in 0..s.passes {
                (s.run)()?;
            }
            s.per_invoice_us
                .push(t.elapsed().as_secs_f64() * 1e6 / f64::from(s.passes) / n as f64);
        }
    }
    for s in &mut steps {
        s.per_invoice_us.sort_by(f64::total_cmp);
    }
    let median = |name: &str| steps.iter().find(|s| s.name == name).map_or(f64::NAN, Step::median);
    let tera1_t = median("tera 1.20: context + email only");
    let tera2_email = median("tera 2.4: context + email only");
    let render_t = median("`Renderer::render_into`: tera 2 + checks + hash");
    let floor_t = median("hand-written floor: email + subject + SMS");
    let hash_t = median("SHA-256 content hash");
    let gzip_t = median(&format!("gzip level {level}, reused compressor"));
    let pipeline = median(&format!(
        "**pipeline**: view + render (incl. hash) + gzip {level} reused"
    ));
    let floor_pipeline = median(&format!(
        "floor pipeline: view + hand-written + gzip {level} reused + hash"
    ));
    let floor_sum = floor_t + gzip_t + hash_t;

    println!(
        "Per invoice, median of {ROUNDS} interleaved rounds (~{} ms each) over the {n} samples; one thread.",
        ROUND_TIME.as_millis()
    );
    println!();
    println!("| step | per invoice | rounds min–max | notes |");
    println!("|---|---:|---:|---|");
    for s in &steps {
        let note = if s.name.starts_with("tera 1.20") {
            format!("{}; {:.2}× tera 2", s.note, tera1_t / tera2_email)
        } else {
            s.note.clone()
        };
        println!(
            "| {} | {:.2} µs | {:.2}–{:.2} | {note} |",
            s.name,
            s.median(),
            s.per_invoice_us[0],
            s.per_invoice_us[ROUNDS - 1]
        );
    }
    println!(
        "| floor sum: hand-written + gzip {level} reused + hash | {floor_sum:.2} µs | | sum of the medians above |"
    );
    println!();
    println!(
        "pipeline / floor sum = {:.2}×; pipeline / floor pipeline = {:.2}×; render_into / hand-written = {:.1}×",
        pipeline / floor_sum,
        pipeline / floor_pipeline,
        render_t / floor_t
    );
    let sizes: Vec<String> = size_at
        .iter()
        .enumerate()
        .map(|(lvl, size)| format!("{lvl}: {size}"))
        .collect();
    println!(
        "gzip size by level, bytes (HTML {html_avg} B on average): {}",
        sizes.join(", ")
    );
    if let (Some((busy0, own0, steal0)), Some((busy1, own1, steal1))) = (started.1, cpu_ticks()) {
        // Clock ticks are 1/100 s on Linux.
        let secs = started.0.elapsed().as_secs_f64();
        let per_sec = |ticks: u64| ticks as f64 / 100.0 / secs;
        println!(
            "run: {secs:.1} s on {} CPUs; meanwhile other processes kept {:.2} CPUs busy and the hypervisor \
             stole {:.2} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            per_sec((busy1 - busy0).saturating_sub(own1 - own0)),
            per_sec(steal1 - steal0)
        );
    }
    Ok(())
}
