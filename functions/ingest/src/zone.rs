//! The drop zone: which object keys are files to ingest, what kind each is, and where its
//! report goes.

use domain::Cycle;

/// Where files are dropped.
pub const INCOMING: &str = "incoming/";
/// Where every processed file's report is written.
pub const REPORTS: &str = "ingest-reports/";
/// Where the report of a file with a rejection (of the file or of a line) is also written.
pub const REJECTED: &str = "rejected/";
/// Where a customers file's plan and chunk manifest are kept while it is applied.
pub const WORK: &str = "ingest/";

/// The kind of a file, as the report names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Catalog,
    Customers,
    Usage,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Catalog => "catalog",
            Kind::Customers => "customers",
            Kind::Usage => "usage",
        }
    }
}

/// What a key in the drop zone is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `incoming/catalog/<name>.json`
    Catalog,
    /// `incoming/customers/<name>.jsonl`
    Customers,
    /// `incoming/usage/<YYYY-MM>/shard-<NNNNN>.csv`
    Usage { cycle: Cycle, shard: u32 },
}

impl Target {
    pub fn kind(self) -> Kind {
        match self {
            Target::Catalog => Kind::Catalog,
            Target::Customers => Kind::Customers,
            Target::Usage { .. } => Kind::Usage,
        }
    }
}

/// The reason a key in the drop zone is not a file to ingest.
pub const UNKNOWN_SHAPE: &str = "the key matches none of the drop zone's shapes: incoming/catalog/<name>.json, \
     incoming/customers/<name>.jsonl, incoming/usage/<YYYY-MM>/shard-<NNNNN>.csv";

/// The kind of the file at `key` (a key under [`INCOMING`]); `Err` with the reason when the
/// key has none of the three shapes.
pub fn classify(key: &str) -> Result<Target, &'static str> {
    let Some(rest) = key.strip_prefix(INCOMING) else {
        return Err(UNKNOWN_SHAPE);
    };
    let named = |rest: &str, suffix: &str| {
        rest.strip_suffix(suffix)
            .is_some_and(|name| !name.is_empty() && !name.ends_with('/') && !name.starts_with('/'))
    };
    if let Some(name) = rest.strip_prefix("catalog/") {
        if named(name, ".json") {
            return Ok(Target::Catalog);
        }
    } else if let Some(name) = rest.strip_prefix("customers/") {
        if named(name, ".jsonl") {
            return Ok(Target::Customers);
        }
    } else if let Some(name) = rest.strip_prefix("usage/")
        && let Some((cycle, file)) = name.split_once('/')
        && let Ok(cycle) = cycle.parse::<Cycle>()
        && let Some(digits) = file.strip_prefix("shard-").and_then(|f| f.strip_suffix(".csv"))
        && (1..=10).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(shard) = digits.parse::<u32>()
    {
        return Ok(Target::Usage { cycle, shard });
    }
    Err(UNKNOWN_SHAPE)
}

/// `ingest-reports/<key without incoming/>.json`.
pub fn report_key(key: &str) -> String {
    format!("{REPORTS}{}.json", key.strip_prefix(INCOMING).unwrap_or(key))
}

/// `rejected/<key without incoming/>.json`.
pub fn rejected_key(key: &str) -> String {
    format!("{REJECTED}{}.json", key.strip_prefix(INCOMING).unwrap_or(key))
}

/// The plan of one ingestion (`ingest/<id>/plan.json`).
pub fn plan_key(id: &str) -> String {
    format!("{WORK}{id}/plan.json")
}

/// The chunk manifest the state machine's map reads (`ingest/<id>/chunks.json`).
pub fn chunks_key(id: &str) -> String {
    format!("{WORK}{id}/chunks.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_shapes_and_nothing_else() {
        assert_eq!(classify("incoming/catalog/2026-v2.json"), Ok(Target::Catalog));
        assert_eq!(classify("incoming/customers/crm-2026-11.jsonl"), Ok(Target::Customers));
        assert_eq!(classify("incoming/customers/a/b.jsonl"), Ok(Target::Customers));
        assert_eq!(
            classify("incoming/usage/2026-11/shard-00003.csv"),
            Ok(Target::Usage {
                cycle: "2026-11".parse().unwrap(),
                shard: 3
            })
        );
        for bad in [
            "incoming/catalog/.json",
            "incoming/catalog/x.jsonl",
            "incoming/customers/x.json",
            "incoming/usage/2026-13/shard-00003.csv",
            "incoming/usage/2026-11/shard-x.csv",
            "incoming/usage/2026-11/shard-.csv",
            "incoming/usage/shard-00001.csv",
            "incoming/readme.txt",
            "elsewhere/customers/x.jsonl",
        ] {
            assert_eq!(classify(bad), Err(UNKNOWN_SHAPE), "{bad}");
        }
    }

    #[test]
    fn reports_mirror_the_key() {
        assert_eq!(
            report_key("incoming/customers/crm.jsonl"),
            "ingest-reports/customers/crm.jsonl.json"
        );
        assert_eq!(
            rejected_key("incoming/usage/2026-11/shard-00001.csv"),
            "rejected/usage/2026-11/shard-00001.csv.json"
        );
    }
}
