//! What the reprice function is given and what it answers, for each of the state machine's
//! three steps (told apart by the input's one key, [`Input`]).

use domain::Cycle;
use serde::{Deserialize, Serialize};

use crate::summary::Summary;

/// What an operator starts an execution with (the console's input):
/// `{"cycle": "2026-11", "catalog": "2026-v2"}`. Both are text here and checked by the plan,
/// so that a bad value is refused naming the field, never echoing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    pub cycle: String,
    pub catalog: String,
}

/// The plan's input: the execution's input and the execution's name (`$$.Execution.Name`),
/// which names the run's folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInput {
    pub input: StartInput,
    pub execution: String,
}

/// One re-pricing, as every step after the plan knows it: the plan's answer, the input of
/// the map (its manifest) and of the finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    pub cycle: Cycle,
    /// The catalog version the month is re-priced with.
    pub catalog: String,
    /// The version the month was settled with (pinned on the cycle record).
    pub live_catalog: String,
    /// The run's name (the execution's name).
    pub run: String,
    pub bucket: String,
    /// `shadow/{cycle}/{catalog}/{run}`: everything the run writes is under it.
    pub prefix: String,
    /// The shards to re-price, ascending (the settlement's manifest).
    pub shards: Vec<u32>,
    pub manifest_bucket: String,
    pub manifest_key: String,
    pub max_concurrency: u32,
}

/// One item of the map: a shard to re-price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardItem {
    pub cycle: Cycle,
    pub catalog: String,
    pub live_catalog: String,
    pub run: String,
    pub prefix: String,
    pub shard: u32,
}

/// A shard's answer (what its summary object holds, in brief).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOutput {
    pub shard: u32,
    pub customers: u64,
    pub changed: u64,
    pub sum_delta: i64,
    pub diff_key: String,
    pub summary_key: String,
}

/// The finish's input: the plan's answer (the state machine passes it through the map).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishInput {
    pub work: Work,
}

/// Where the finished run's files are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    pub summary: String,
    pub diff_jsonl: String,
    pub diff_csv: String,
    pub report: String,
}

/// The finish's answer: the execution's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishOutput {
    pub bucket: String,
    pub prefix: String,
    pub files: Files,
    pub summary: Summary,
}

/// The function's input: `{"plan": …}`, `{"shard": …}` or `{"finish": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    Plan(PlanInput),
    Shard(ShardItem),
    Finish(FinishInput),
}

/// The function's answer to each step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Plan(Work),
    Shard(ShardOutput),
    Finish(Box<FinishOutput>),
}
