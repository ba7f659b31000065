//! The closing lines of `local-run month` in the terminal: phases, slowest shards, cost,
//! and where the report is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use local_run::report::MonthReport;

/// The end of the terminal output: phases, slowest shards, cost, where the report is.
pub(crate) fn print_summary(r: &MonthReport, written: &[PathBuf]) {
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {:.1} s ({:.0} {}/s)", p.name, p.seconds, p.per_second(), p.unit))
        .collect();
    println!("phases     {}", phases.join(" · "));
    let slow: Vec<String> = r
        .slowest_shards
        .iter()
        .map(|s| {
            format!(
                "{} shard {} in {:.2} s (mean {:.2} s)",
                s.function,
                s.shard.map_or("-".to_owned(), |n| n.to_string()),
                s.seconds,
                s.mean_seconds
            )
        })
        .collect();
    println!("slowest    {}", slow.join("; "));
    let c = &r.cost;
    let mut by_service: BTreeMap<&str, f64> = BTreeMap::new();
    for l in &c.aws {
        *by_service.entry(l.service.as_str()).or_insert(0.0) += l.usd_per_million_invoices;
    }
    println!(
        "cost       ≈ ${:.2} per 1,000,000 invoices on AWS at the list prices of {} ({}, {}): {}",
        c.aws_usd_per_million_invoices,
        c.prices_as_of,
        c.region,
        c.price_file,
        by_service
            .iter()
            .map(|(k, v)| format!("{k} ${v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "           the mock provider apart: ${:.2} ({})",
        c.mock_provider_usd_per_million_invoices,
        c.mock_provider
            .iter()
            .map(|l| format!("{} {} ${:.2}", l.service, l.item, l.usd_per_million_invoices))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let fees: Vec<String> = c
        .message_fees
        .iter()
        .map(|l| format!("{} ${:.2}", l.service, l.usd_per_million_invoices))
        .collect();
    println!(
        "           message fees separately: {}{}",
        fees.join(", "),
        if c.message_fees_usd_per_million_invoices.is_none() {
            " (SMS unpriced: set sms.per_message in the price table)"
        } else {
            ""
        }
    );
    if !r.ok {
        println!("MISMATCH   {}", r.problems.join("; "));
    }
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    println!(
        "report     {} in {} (open month.html in a browser)",
        names.join(", "),
        written
            .first()
            .and_then(|p| p.parent())
            .map_or(String::new(), |d| d.display().to_string())
    );
    println!("{} in {:.1} s", if r.ok { "done" } else { "FAILED" }, r.seconds);
}
