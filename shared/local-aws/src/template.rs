//! Reading the storage parts of a SAM / CloudFormation template.
//!
//! Only what local provisioning needs: parameters with their defaults, the resources (in
//! document order), `Globals.Function.Environment.Variables` and each function's own
//! variables, the intrinsic functions that name things (`Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! `Fn::Join`), and the conditions (`Conditions`, a resource's `Condition`, `Fn::If`), in both
//! the short (`!Ref X`) and the long (`{"Ref": "X"}`) form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use serde_yaml::value::TaggedValue;

/// Errors from reading a template or resolving one of its values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing template: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{at}: {msg}")]
    Invalid { at: String, msg: String },
    /// A `Ref`/`GetAtt` to something that is neither a parameter, a pseudo parameter nor a
    /// provisioned (or, for functions, named) resource.
    #[error("cannot resolve {0}")]
    Unresolved(String),
    #[error("unsupported intrinsic function {0}")]
    Unsupported(String),
}

fn invalid(at: impl Into<String>, msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        at: at.into(),
        msg: msg.into(),
    }
}

/// One entry of the template's `Resources`.
#[derive(Debug, Clone)]
pub struct ResourceDecl {
    pub logical_id: String,
    /// The CloudFormation type, e.g. `AWS::DynamoDB::Table`.
    pub kind: String,
    /// `Properties`, or `Null` when absent.
    pub properties: Value,
    /// `Condition`: the resource exists only when this condition holds.
    pub condition: Option<String>,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parameters: BTreeMap<String, Option<Value>>,
    /// `Conditions`, unevaluated.
    conditions: BTreeMap<String, Value>,
    resources: Vec<ResourceDecl>,
    globals_env: Vec<(String, Value)>,
    /// `Globals.Function.MemorySize`, when a number.
    globals_memory: Option<u64>,
    base_dir: Option<PathBuf>,
}

impl Template {
    /// Parse template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_yaml::from_str(text)?;
        let root = doc.as_mapping().ok_or_else(|| invalid("template", "not a mapping"))?;

        let mut parameters = BTreeMap::new();
        if let Some(params) = root.get("Parameters").and_then(Value::as_mapping) {
            for (name, decl) in params {
                let name = key_str(name, "Parameters")?;
                parameters.insert(name, decl.get("Default").cloned());
            }
        }

        let mut conditions = BTreeMap::new();
        if let Some(declared) = root.get("Conditions").and_then(Value::as_mapping) {
            for (name, expression) in declared {
                conditions.insert(key_str(name, "Conditions")?, expression.clone());
            }
        }

        let mut resources = Vec::new();
        let declared = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| invalid("template", "no Resources mapping"))?;
        for (id, decl) in declared {
            let logical_id = key_str(id, "Resources")?;
            let kind = decl
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&logical_id, "no Type"))?
                .to_owned();
            let properties = decl.get("Properties").cloned().unwrap_or(Value::Null);
            let condition = decl.get("Condition").and_then(Value::as_str).map(str::to_owned);
            resources.push(ResourceDecl {
                logical_id,
                kind,
                properties,
                condition,
            });
        }

        let globals_env = match root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
        {
            Some(vars) => env_pairs(vars, "Globals.Function.Environment.Variables")?,
            None => Vec::new(),
        };

        let globals_memory = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("MemorySize"))
            .and_then(Value::as_u64);

        Ok(Self {
            parameters,
            conditions,
            resources,
            globals_env,
            globals_memory,
            base_dir: None,
        })
    }

    /// Read and parse a template file; relative paths in it (`DefinitionUri`) are relative
    /// to the file's directory, as for SAM.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self::parse(&text)?.with_base_dir(base))
    }

    /// Set the directory relative paths in the template are resolved against.
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// The directory relative paths are resolved against: the template file's directory
    /// for a loaded template, `None` for parsed text (then the project root is used).
    pub fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// Resources in document order.
    pub fn resources(&self) -> &[ResourceDecl] {
        &self.resources
    }

    /// One resource by logical id.
    pub fn resource(&self, logical_id: &str) -> Option<&ResourceDecl> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    /// Declared parameters and their `Default`s.
    pub fn parameters(&self) -> &BTreeMap<String, Option<Value>> {
        &self.parameters
    }

    /// `Globals.Function.Environment.Variables`, unresolved.
    pub fn globals_env(&self) -> &[(String, Value)] {
        &self.globals_env
    }

    /// A function's own `Environment.Variables` (not merged with the globals), unresolved.
    pub fn function_env(&self, logical_id: &str) -> Result<Vec<(String, Value)>, TemplateError> {
        let Some(decl) = self.resource(logical_id) else {
            return Ok(Vec::new());
        };
        match decl.properties.get("Environment").and_then(|e| e.get("Variables")) {
            Some(vars) => env_pairs(vars, logical_id),
            None => Ok(Vec::new()),
        }
    }

    /// A function's memory (MB): its own `MemorySize` when a number, else the globals'.
    pub fn function_memory_mb(&self, logical_id: &str) -> Option<u64> {
        self.resource(logical_id)
            .and_then(|d| d.properties.get("MemorySize"))
            .and_then(Value::as_u64)
            .or(self.globals_memory)
    }

    /// Logical ids of the functions (`AWS::Serverless::Function`, `AWS::Lambda::Function`).
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.resources
            .iter()
            .filter(|r| r.kind == "AWS::Serverless::Function" || r.kind == "AWS::Lambda::Function")
            .map(|r| r.logical_id.as_str())
    }
}

fn key_str(key: &Value, at: &str) -> Result<String, TemplateError> {
    key.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "non-string key"))
}

fn env_pairs(vars: &Value, at: &str) -> Result<Vec<(String, Value)>, TemplateError> {
    let map = vars
        .as_mapping()
        .ok_or_else(|| invalid(at, "Variables is not a mapping"))?;
    map.iter().map(|(k, v)| Ok((key_str(k, at)?, v.clone()))).collect()
}

/// What a `Ref` or `Fn::GetAtt` to a resource resolves to.
pub trait Lookup {
    /// `!Ref logical_id` of a resource, if known.
    fn reference(&self, logical_id: &str) -> Option<String>;
    /// `!GetAtt logical_id.attribute`, if known.
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String>;
}

/// Resolves template values to strings: parameters (from their defaults or overrides),
/// pseudo parameters, and resources through a [`Lookup`].
pub struct Resolver<'a> {
    pub template: &'a Template,
    pub parameters: &'a BTreeMap<String, String>,
    pub region: &'a str,
    pub account_id: &'a str,
    pub stack_name: &'a str,
    pub resources: &'a dyn Lookup,
}

impl<'a> Resolver<'a> {
    /// A resolver for a stack in the emulator: its region ([`crate::REGION`]) and account
    /// ([`crate::ACCOUNT_ID`]).
    pub fn local(
        template: &'a Template,
        parameters: &'a BTreeMap<String, String>,
        stack_name: &'a str,
        resources: &'a dyn Lookup,
    ) -> Self {
        Resolver {
            template,
            parameters,
            region: crate::REGION,
            account_id: crate::ACCOUNT_ID,
            stack_name,
            resources,
        }
    }
}

impl Resolver<'_> {
    /// Resolve a scalar or an intrinsic function to a string.
    pub fn string(&self, value: &Value) -> Result<String, TemplateError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(tagged) => self.intrinsic(&tag_name(tagged), &tagged.value),
            Value::Mapping(map) if map.len() == 1 => {
                let (k, v) = map.iter().next().unwrap_or((&Value::Null, &Value::Null));
                match k.as_str() {
                    Some("Ref") => self.intrinsic("Ref", v),
                    Some(f) if f.starts_with("Fn::") => self.intrinsic(&f["Fn::".len()..], v),
                    _ => Err(invalid(format!("{k:?}"), "expected a scalar")),
                }
            }
            other => Err(invalid(format!("{other:?}"), "expected a scalar")),
        }
    }

    /// A whole value as JSON, with every intrinsic function in it resolved to a string
    /// (e.g. an inline state machine `Definition`).
    pub fn json(&self, value: &Value) -> Result<serde_json::Value, TemplateError> {
        use serde_json::Value as J;
        Ok(match value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    J::from(i)
                } else if let Some(u) = n.as_u64() {
                    J::from(u)
                } else {
                    n.as_f64().map_or(J::Null, J::from)
                }
            }
            Value::String(s) => J::String(s.clone()),
            Value::Sequence(seq) => J::Array(seq.iter().map(|v| self.json(v)).collect::<Result<_, _>>()?),
            Value::Tagged(_) => J::String(self.string(value)?),
            Value::Mapping(map) => {
                let intrinsic = map.len() == 1
                    && map
                        .keys()
                        .next()
                        .and_then(Value::as_str)
                        .is_some_and(|k| k == "Ref" || k.starts_with("Fn::"));
                if intrinsic {
                    J::String(self.string(value)?)
                } else {
                    let mut out = serde_json::Map::new();
                    for (k, v) in map {
                        out.insert(key_str(k, "mapping")?, self.json(v)?);
                    }
                    J::Object(out)
                }
            }
        })
    }

    /// A numeric property, e.g. `VisibilityTimeout: 360` or `!Ref VisibilityParam`.
    pub fn integer(&self, value: &Value) -> Result<i64, TemplateError> {
        let s = self.string(value)?;
        s.trim().parse().map_err(|_| invalid(s, "expected an integer"))
    }

    /// A boolean property (`true`/`false`, also as strings).
    pub fn boolean(&self, value: &Value) -> Result<bool, TemplateError> {
        match self.string(value)?.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(invalid(other, "expected true or false")),
        }
    }

    fn intrinsic(&self, function: &str, arg: &Value) -> Result<String, TemplateError> {
        match function {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| invalid("Ref", "argument is not a string"))?;
                self.reference(name)
            }
            "GetAtt" => {
                let (id, attr) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .ok_or_else(|| invalid(s.clone(), "GetAtt needs Resource.Attribute"))?,
                    Value::Sequence(seq) if seq.len() == 2 => {
                        (seq[0].as_str().unwrap_or_default(), seq[1].as_str().unwrap_or_default())
                    }
                    _ => return Err(invalid("GetAtt", "bad argument")),
                };
                self.attribute(id, attr)
            }
            "Sub" => match arg {
                Value::String(s) => self.sub(s, &serde_yaml::Mapping::new()),
                Value::Sequence(seq) if seq.len() == 2 => {
                    let text = seq[0]
                        .as_str()
                        .ok_or_else(|| invalid("Sub", "first element is not a string"))?;
                    let vars = seq[1]
                        .as_mapping()
                        .ok_or_else(|| invalid("Sub", "second element is not a mapping"))?;
                    self.sub(text, vars)
                }
                _ => Err(invalid("Sub", "bad argument")),
            },
            "Join" => {
                let seq = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .ok_or_else(|| invalid("Join", "expected [separator, [values]]"))?;
                let sep = seq[0]
                    .as_str()
                    .ok_or_else(|| invalid("Join", "separator is not a string"))?;
                let parts = seq[1]
                    .as_sequence()
                    .ok_or_else(|| invalid("Join", "values are not a list"))?
                    .iter()
                    .map(|v| self.string(v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(parts.join(sep))
            }
            "If" => {
                let seq = arg
                    .as_sequence()
                    .filter(|s| s.len() == 3)
                    .ok_or_else(|| invalid("If", "expected [condition, value if true, value if false]"))?;
                let name = seq[0]
                    .as_str()
                    .ok_or_else(|| invalid("If", "the condition is not a name"))?;
                self.string(&seq[if self.condition(name)? { 1 } else { 2 }])
            }
            other => Err(TemplateError::Unsupported(other.to_owned())),
        }
    }

    /// Whether the template's condition `name` holds for these parameters (`Fn::Equals`,
    /// `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, in either form).
    pub fn condition(&self, name: &str) -> Result<bool, TemplateError> {
        self.condition_within(name, 0)
    }

    /// Whether a resource declared with this `Condition` exists in the stack.
    pub fn exists(&self, decl: &ResourceDecl) -> Result<bool, TemplateError> {
        decl.condition.as_deref().map_or(Ok(true), |c| self.condition(c))
    }

    fn condition_within(&self, name: &str, depth: usize) -> Result<bool, TemplateError> {
        if depth > 32 {
            return Err(invalid(name, "conditions refer to each other too deeply"));
        }
        let expression = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::Unresolved(format!("condition {name}")))?;
        self.truth(expression, depth + 1)
    }

    fn truth(&self, v: &Value, depth: usize) -> Result<bool, TemplateError> {
        let (function, arg) = match v {
            Value::Tagged(t) => (tag_name(t), &t.value),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().unwrap_or((&Value::Null, &Value::Null));
                let k = k.as_str().unwrap_or_default();
                (k.strip_prefix("Fn::").unwrap_or(k).to_owned(), arg)
            }
            other => return Err(invalid(format!("{other:?}"), "not a condition")),
        };
        let args = || {
            arg.as_sequence()
                .map(Vec::as_slice)
                .ok_or_else(|| invalid(function.clone(), "expected a list"))
        };
        match function.as_str() {
            "Equals" => match args()? {
                [a, b] => Ok(self.string(a)? == self.string(b)?),
                _ => Err(invalid("Equals", "expected two values")),
            },
            "Not" => match args()? {
                [a] => Ok(!self.truth(a, depth)?),
                _ => Err(invalid("Not", "expected one condition")),
            },
            "And" => args()?.iter().try_fold(true, |all, a| Ok(all && self.truth(a, depth)?)),
            "Or" => args()?
                .iter()
                .try_fold(false, |any, a| Ok(any || self.truth(a, depth)?)),
            "Condition" => {
                let name = arg.as_str().ok_or_else(|| invalid("Condition", "not a name"))?;
                self.condition_within(name, depth)
            }
            other => Err(TemplateError::Unsupported(other.to_owned())),
        }
    }

    fn reference(&self, name: &str) -> Result<String, TemplateError> {
        if let Some(v) = self.parameters.get(name) {
            return Ok(v.clone());
        }
        if let Some(Some(default)) = self.template.parameters.get(name) {
            return self.string(default);
        }
        match name {
            "AWS::Region" => return Ok(self.region.to_owned()),
            "AWS::AccountId" => return Ok(self.account_id.to_owned()),
            "AWS::StackName" => return Ok(self.stack_name.to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            _ => {}
        }
        self.resources
            .reference(name)
            .ok_or_else(|| TemplateError::Unresolved(name.to_owned()))
    }

    fn attribute(&self, id: &str, attr: &str) -> Result<String, TemplateError> {
        self.resources
            .attribute(id, attr)
            .ok_or_else(|| TemplateError::Unresolved(format!("{id}.{attr}")))
    }

    fn sub(&self, text: &str, vars: &serde_yaml::Mapping) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| invalid(text, "unclosed ${ in Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.string(v)?);
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn tag_name(tagged: &TaggedValue) -> String {
    tagged.tag.to_string().trim_start_matches('!').to_owned()
}

/// A property of a resource, `Null` when absent.
pub(crate) fn prop<'v>(props: &'v Value, name: &str) -> &'v Value {
    props.get(name).unwrap_or(&Value::Null)
}

/// The elements of a list property (empty when absent).
pub(crate) fn list<'v>(props: &'v Value, name: &str) -> &'v [Value] {
    props
        .get(name)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The `Ref`/`GetAtt`/`Sub` targets named anywhere inside a value, in order (used to
/// create a dead-letter queue before the queues that redrive to it).
pub fn references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_references(value, &mut out);
    out
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Tagged(t) => {
            let name = tag_name(t);
            match (name.as_str(), &t.value) {
                ("Ref", Value::String(s)) => out.push(s.clone()),
                ("GetAtt", Value::String(s)) => out.push(s.split_once('.').map_or(s.as_str(), |p| p.0).to_owned()),
                ("Sub", Value::String(s)) => sub_names(s, out),
                _ => collect_references(&t.value, out),
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some("Ref"), Value::String(s)) => out.push(s.clone()),
                    (Some("Fn::GetAtt"), Value::Sequence(seq)) if !seq.is_empty() => {
                        if let Some(s) = seq[0].as_str() {
                            out.push(s.to_owned());
                        }
                    }
                    (Some("Fn::GetAtt"), Value::String(s)) => {
                        out.push(s.split_once('.').map_or(s.as_str(), |p| p.0).to_owned())
                    }
                    (Some("Fn::Sub"), Value::String(s)) => sub_names(s, out),
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

fn sub_names(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { return };
        let name = &after[..end];
        if !name.starts_with('!') {
            out.push(name.split_once('.').map_or(name, |p| p.0).to_owned());
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  Retention:
    Type: Number
    Default: 345600
Globals:
  Function:
    Environment:
      Variables:
        CUSTOMERS_TABLE: !Ref CustomersTable
        DLQ_ARN: !GetAtt DeadLetterQueue.Arn
        LONG_FORM: { "Fn::GetAtt": [DeadLetterQueue, Arn] }
        STAGE_NAME: !Sub "billing-${Stage}-${AWS::Region}"
        JOINED: !Join ["/", [!Ref Stage, literal, 7]]
        FN: !Ref SomeFunction
        RUST_LOG: info
Resources:
  CustomersTable:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema:
        - { AttributeName: shard, KeyType: HASH }
  DeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: !Ref Retention
  SomeFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref DeadLetterQueue
"#;

    struct Fake;
    impl Lookup for Fake {
        fn reference(&self, id: &str) -> Option<String> {
            match id {
                "CustomersTable" => Some("t-CustomersTable".into()),
                "DeadLetterQueue" => Some("http://q/dlq".into()),
                _ => None,
            }
        }
        fn attribute(&self, id: &str, attr: &str) -> Option<String> {
            (id == "DeadLetterQueue" && attr == "Arn").then(|| "arn:dlq".into())
        }
    }

    fn resolve(t: &Template, v: &Value) -> Result<String, TemplateError> {
        let params = BTreeMap::new();
        Resolver::local(t, &params, "s", &Fake).string(v)
    }

    #[test]
    fn parses_resources_in_order_with_types() {
        let t = Template::parse(SAMPLE).unwrap();
        let ids: Vec<_> = t
            .resources()
            .iter()
            .map(|r| (r.logical_id.as_str(), r.kind.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("CustomersTable", "AWS::DynamoDB::Table"),
                ("DeadLetterQueue", "AWS::SQS::Queue"),
                ("SomeFunction", "AWS::Serverless::Function"),
            ]
        );
        assert_eq!(t.functions().collect::<Vec<_>>(), ["SomeFunction"]);
        assert_eq!(t.parameters()["Stage"], Some(Value::String("dev".to_owned())));
    }

    #[test]
    fn short_form_tags_are_tagged_values() {
        let t = Template::parse(SAMPLE).unwrap();
        let (name, value) = &t.globals_env()[0];
        assert_eq!(name, "CUSTOMERS_TABLE");
        let Value::Tagged(tagged) = value else {
            panic!("expected a tagged value, got {value:?}")
        };
        assert_eq!(tag_name(tagged), "Ref");
        assert_eq!(tagged.value, Value::String("CustomersTable".into()));
    }

    #[test]
    fn resolves_intrinsics() {
        let t = Template::parse(SAMPLE).unwrap();
        let env: BTreeMap<_, _> = t
            .globals_env()
            .iter()
            .map(|(k, v)| (k.as_str(), resolve(&t, v)))
            .collect();
        assert_eq!(env["CUSTOMERS_TABLE"].as_deref().unwrap(), "t-CustomersTable");
        assert_eq!(env["DLQ_ARN"].as_deref().unwrap(), "arn:dlq");
        assert_eq!(env["LONG_FORM"].as_deref().unwrap(), "arn:dlq");
        assert_eq!(env["STAGE_NAME"].as_deref().unwrap(), "billing-dev-ap-northeast-2");
        assert_eq!(env["JOINED"].as_deref().unwrap(), "dev/literal/7");
        assert_eq!(env["RUST_LOG"].as_deref().unwrap(), "info");
        assert!(matches!(
            env["FN"],
            Err(TemplateError::Unresolved(ref n)) if n == "SomeFunction"
        ));
    }

    #[test]
    fn parameter_defaults_resolve_as_numbers() {
        let t = Template::parse(SAMPLE).unwrap();
        let q = t.resource("DeadLetterQueue").unwrap();
        let params = BTreeMap::from([("Stage".to_owned(), "prod".to_owned())]);
        let r = Resolver::local(&t, &params, "s", &Fake);
        assert_eq!(
            r.integer(prop(&q.properties, "MessageRetentionPeriod")).unwrap(),
            345_600
        );
        // An override wins over the default.
        assert_eq!(
            r.string(&Value::Tagged(Box::new(TaggedValue {
                tag: serde_yaml::value::Tag::new("Ref"),
                value: Value::String("Stage".into()),
            })))
            .unwrap(),
            "prod"
        );
    }

    #[test]
    fn sub_keeps_escaped_literals_and_uses_local_vars() {
        let t = Template::parse(SAMPLE).unwrap();
        let v: Value =
            serde_yaml::from_str("!Sub ['${!Literal}-${X}-${DeadLetterQueue.Arn}', {X: !Ref Stage}]").unwrap();
        assert_eq!(resolve(&t, &v).unwrap(), "${Literal}-dev-arn:dlq");
    }

    #[test]
    fn conditions_decide_resources_and_if_in_both_forms() {
        let t = Template::parse(
            r#"
Parameters:
  Activity: {Type: String, Default: running}
  SecretName: {Type: String, Default: ""}
Conditions:
  Running: !Equals [!Ref Activity, running]
  OwnSecret: {"Fn::Equals": [{"Ref": SecretName}, ""]}
  Both: !And [!Condition Running, !Not [!Condition OwnSecret]]
  Either: {"Fn::Or": [{"Condition": Running}, {"Condition": OwnSecret}]}
Resources:
  Secret:
    Type: AWS::SecretsManager::Secret
    Condition: OwnSecret
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          SECRET: !If [OwnSecret, !Ref Secret, !Ref SecretName]
          STATE: {"Fn::If": [Running, ENABLED, DISABLED]}
"#,
        )
        .unwrap();
        let vars: BTreeMap<String, Value> = t.function_env("Fn").unwrap().into_iter().collect();
        let mut params = BTreeMap::new();
        let check = |params: &BTreeMap<String, String>, own: bool, secret: &str, state: &str| {
            let r = Resolver::local(&t, params, "s", &Fake);
            assert_eq!(r.exists(t.resource("Secret").unwrap()).unwrap(), own);
            let lookup = Resolver::local(&t, params, "s", &OneSecret);
            assert_eq!(lookup.string(&vars["SECRET"]).unwrap(), secret);
            assert_eq!(r.string(&vars["STATE"]).unwrap(), state);
            assert_eq!(r.condition("Both").unwrap(), !own && state == "ENABLED");
            assert_eq!(r.condition("Either").unwrap(), own || state == "ENABLED");
        };
        check(&params, true, "arn:own-secret", "ENABLED");
        params.insert("Activity".to_owned(), "paused".to_owned());
        params.insert("SecretName".to_owned(), "shared-keys".to_owned());
        check(&params, false, "shared-keys", "DISABLED");
        let r = Resolver::local(&t, &params, "s", &Fake);
        assert!(matches!(r.condition("Nowhere"), Err(TemplateError::Unresolved(_))));
    }

    struct OneSecret;
    impl Lookup for OneSecret {
        fn reference(&self, id: &str) -> Option<String> {
            (id == "Secret").then(|| "arn:own-secret".into())
        }
        fn attribute(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn function_env_and_references() {
        let t = Template::parse(SAMPLE).unwrap();
        let f = t.function_env("SomeFunction").unwrap();
        assert_eq!(f[0].0, "QUEUE_URL");
        assert_eq!(resolve(&t, &f[0].1).unwrap(), "http://q/dlq");

        let v: Value = serde_yaml::from_str(
            "{a: !GetAtt A.Arn, b: [!Ref B, {\"Fn::GetAtt\": [C, Arn]}], c: !Sub '${D}/${E.Arn}/${!F}'}",
        )
        .unwrap();
        assert_eq!(references(&v), ["A", "B", "C", "D", "E"]);
    }

    #[test]
    fn json_resolves_intrinsics_anywhere() {
        let t = Template::parse(SAMPLE).unwrap();
        let v: Value = serde_yaml::from_str(
            r#"{StartAt: A, States: {A: {Type: Task, Resource: !GetAtt DeadLetterQueue.Arn,
                Parameters: {"T.$": "$.t", L: [1, 2.5, true, null, {"Ref": Stage}]}, End: true}}}"#,
        )
        .unwrap();
        let params = BTreeMap::new();
        let r = Resolver::local(&t, &params, "s", &Fake);
        assert_eq!(
            r.json(&v).unwrap(),
            serde_json::json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:dlq",
                "Parameters": {"T.$": "$.t", "L": [1, 2.5, true, null, "dev"]}, "End": true}}})
        );
    }

    #[test]
    fn rejects_templates_without_resources() {
        assert!(matches!(
            Template::parse("Parameters: {}"),
            Err(TemplateError::Invalid { .. })
        ));
    }
}
