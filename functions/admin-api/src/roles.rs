//! The platform's roles: who may read, who may act on a delivery within the customer's
//! slots, who may do the rest.
//!
//! | role | may |
//! |---|---|
//! | `viewer` | every read |
//! | `operator` | a viewer's reads; `hold`, `schedule`, `resend`, `convert-to-sms`, `confirm` (commands that keep the customer's do-not-disturb slots) |
//! | `administrator` | an operator's; `force-send` (past the slots), settings and the channel policy, template activation, queue redrive, role changes |
//!
//! Which route needs which role is one table ([`crate::access::ROUTES`]). A caller's role is
//! granted to its IAM principal ([`crate::identity::Principal`]) in one `AdminTable` item,
//! `pk` = `ROLES`, read strongly consistent on every request (a change takes effect on the
//! next one). The mapping changes only by an administrator's command (`PUT /roles/{principal}`,
//! audited and idempotent like every command: [`crate::command_log`]), written in one
//! transaction with its record and conditioned on the revision read, so two administrators
//! cannot overwrite each other unseen.
//!
//! The stack parameter `AdminBootstrapRole` names the **bootstrap administrator**
//! (`ADMIN_BOOTSTRAP_PRINCIPAL`): that role is administrator whatever the mapping says and
//! its role cannot be changed through the API, so the platform cannot be locked out of its
//! own roles. Moving the bootstrap to another role is a stack update.

use std::collections::BTreeMap;

use adapters::dynamo::{Item, attr_s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::json;

use crate::command_log::{Given, changed_meanwhile, check_reason};
use crate::identity::{Kind, Principal};
use crate::{ApiError, Deps, Response};

/// A platform role. Each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Administrator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Administrator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Administrator => "administrator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mapping's item in `AdminTable`.
const KEY: &str = "ROLES";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// One principal's role, as granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    pub updated_at: String,
    /// The verified ARN of the administrator who granted it.
    pub updated_by: String,
    pub command_id: String,
}

/// The stored mapping: principal → grant, and the revision that wrote it (0: never written).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    pub revision: u64,
    pub grants: BTreeMap<String, Grant>,
}

impl Mapping {
    fn decode(item: &Item) -> Option<Mapping> {
        let revision = item.get("revision")?.as_n().ok()?.parse().ok()?;
        let mut grants = BTreeMap::new();
        for (principal, v) in item.get("grants")?.as_m().ok()? {
            let g = v.as_m().ok()?;
            grants.insert(
                principal.clone(),
                Grant {
                    role: Role::parse(attr_s(g, "role")?)?,
                    updated_at: attr_s(g, "updated_at")?.to_owned(),
                    updated_by: attr_s(g, "updated_by")?.to_owned(),
                    command_id: attr_s(g, "command_id")?.to_owned(),
                },
            );
        }
        Some(Mapping { revision, grants })
    }

    fn encode(&self) -> AttributeValue {
        let grants = self
            .grants
            .iter()
            .map(|(principal, g)| {
                let m: Item = [
                    ("role".to_owned(), s(g.role.as_str())),
                    ("updated_at".to_owned(), s(&g.updated_at)),
                    ("updated_by".to_owned(), s(&g.updated_by)),
                    ("command_id".to_owned(), s(&g.command_id)),
                ]
                .into();
                (principal.clone(), AttributeValue::M(m))
            })
            .collect();
        AttributeValue::M(grants)
    }
}

/// The role mapping in `AdminTable`, and the bootstrap administrator.
#[derive(Clone, Debug)]
pub struct RoleStore {
    client: Client,
    table: String,
    bootstrap: Principal,
}

impl RoleStore {
    /// `bootstrap`: the ARN of the bootstrap administrator's role or user (`None` when it
    /// names neither).
    pub fn new(client: Client, table: impl Into<String>, bootstrap: &str) -> Option<Self> {
        Some(RoleStore {
            client,
            table: table.into(),
            bootstrap: Principal::of(bootstrap)?,
        })
    }

    /// The bootstrap administrator's principal.
    pub fn bootstrap(&self) -> &Principal {
        &self.bootstrap
    }

    /// The stored mapping (a strongly consistent read).
    pub async fn mapping(&self) -> Result<Mapping, ApiError> {
        let got = adapters::dynamo::get_item(&self.client, &self.table, [("pk", s(KEY))], true).await?;
        match got {
            None => Ok(Mapping::default()),
            Some(item) => Mapping::decode(&item)
                .ok_or_else(|| ApiError::Internal(format!("the role mapping in {} does not decode", self.table))),
        }
    }

    /// A principal's role: administrator for the bootstrap, the mapping's otherwise.
    pub async fn role_of(&self, principal: &Principal) -> Result<Option<Role>, ApiError> {
        if principal.arn == self.bootstrap.arn {
            return Ok(Some(Role::Administrator));
        }
        Ok(self.mapping().await?.grants.get(&principal.arn).map(|g| g.role))
    }

    /// The write of `mapping` as revision `previous + 1`, for a transaction: refused
    /// (`ConditionalCheckFailed`) when the stored revision is not `previous`.
    fn put(&self, mapping: &Mapping, previous: u64) -> Result<Put, ApiError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(KEY))
            .item("revision", AttributeValue::N((previous + 1).to_string()))
            .item("grants", mapping.encode());
        let put = if previous == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("revision = :previous")
                .expression_attribute_values(":previous", AttributeValue::N(previous.to_string()))
        };
        put.build()
            .map_err(|e| ApiError::Internal(format!("building the role mapping's write: {e}")))
    }
}

/// `GET /roles`: every grant, the bootstrap administrator, and the caller's own role.
pub(crate) async fn list(deps: &Deps, caller: &Principal, caller_role: Role) -> Result<Response, ApiError> {
    let mapping = deps.roles.mapping().await?;
    let bootstrap = deps.roles.bootstrap();
    let mut roles = vec![json!({
        "principal": bootstrap.arn,
        "role": Role::Administrator.as_str(),
        "source": "bootstrap (the stack parameter AdminBootstrapRole; cannot be changed here)",
    })];
    roles.extend(
        mapping
            .grants
            .iter()
            .filter(|(p, _)| **p != bootstrap.arn)
            .map(|(p, g)| {
                json!({
                    "principal": p,
                    "role": g.role.as_str(),
                    "source": "command",
                    "updated_at": g.updated_at,
                    "updated_by": g.updated_by,
                    "command_id": g.command_id,
                })
            }),
    );
    Ok(Response::ok(json!({
        "you": {"principal": caller.arn, "role": caller_role.as_str()},
        "roles": roles,
        "revision": mapping.revision,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    /// Taken by [`crate::command_log::Requested::parse`]; declared so that `deny_unknown_fields` accepts it.
    #[allow(dead_code)]
    command_id: String,
    reason: String,
    /// `viewer`, `operator`, `administrator`, or `none` (the grant is removed).
    role: String,
}

/// `PUT /roles/{principal}`: grants a role to a principal, or removes its grant (`none`).
pub(crate) async fn set(deps: &Deps, principal: &str, given: &Given<'_>) -> Result<Response, ApiError> {
    let body: RoleBody = given.body()?;
    check_reason(&body.reason)?;
    let principal = Principal::of(principal).ok_or_else(|| {
        ApiError::bad(
            "invalid-principal",
            "the principal must be an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME, …:user/NAME) or a role session's ARN",
        )
    })?;
    // A grant is kept, logged and listed to every viewer: a name shaped like someone's contact
    // data is not taken (IAM allows `@` and `+` in names).
    if domain::text::holds_contact(&principal.name) {
        return Err(ApiError::bad(
            "invalid-principal",
            "the principal's name must not look like an email address or a phone number: grant the role, not a person's address",
        ));
    }
    let role = match body.role.as_str() {
        "none" => None,
        r => Some(Role::parse(r).ok_or_else(|| {
            ApiError::bad(
                "invalid-role",
                "role must be viewer, operator, administrator or none (removes the grant)",
            )
        })?),
    };
    if principal.arn == deps.roles.bootstrap().arn {
        return Err(ApiError::conflict(
            "bootstrap-administrator",
            "this principal is the bootstrap administrator (the stack parameter AdminBootstrapRole): it is always administrator, and only a stack update changes it",
        ));
    }
    let command_id = given.id();
    let cmd = given.record("set-role", format!("role:{}", principal.arn), &body.reason);
    let current = deps.roles.mapping().await?;
    let previous = current.grants.get(&principal.arn).map(|g| g.role);
    let mut next = current.clone();
    match role {
        Some(role) => {
            next.grants.insert(
                principal.arn.clone(),
                Grant {
                    role,
                    updated_at: given.now.to_rfc3339_opts(SecondsFormat::Millis, true),
                    updated_by: given.caller.arn.clone(),
                    command_id: command_id.to_owned(),
                },
            );
        }
        None => {
            next.grants.remove(&principal.arn);
        }
    }
    let put = deps.roles.put(&next, current.revision)?;
    let role_name = role.map_or("none", Role::as_str);
    let result = json!({
        "command_id": command_id,
        "command": "set-role",
        "principal": principal.arn,
        "role": role_name,
        "previous": previous.map_or("none", Role::as_str),
        "revision": current.revision + 1,
        "takes_effect": "the principal's next request",
        "replayed": false,
    });
    let effect = TransactWriteItem::builder().put(put).build();
    let refused = || changed_meanwhile("the role mapping");
    let applied = deps.commands.apply(&cmd, effect, result, refused).await?;
    Ok(applied.answer(|| {
        tracing::info!(command_id, role = role_name, principal = %principal.masked(), who = %given.caller.masked(), "role changed");
    }))
}

/// The principal named by a route's `{principal}`: the path's rest, percent-decoded.
pub(crate) fn principal_in_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a caller may not use a route (403): which role it needs, which the caller has.
pub(crate) fn refusal(method: &str, pattern: &str, needs: Role, caller: &Principal, has: Option<Role>) -> ApiError {
    // A role's ARN tells the caller what to ask an administrator for; a user's name (often an
    // email address) is not repeated.
    let who = match caller.kind {
        Kind::Role if !caller.name.contains('@') => format!("the caller ({})", caller.arn),
        _ => "the caller".to_owned(),
    };
    let has = match has {
        Some(r) => format!("{who} has the {r} role"),
        None => format!("{who} has no role; an administrator grants one with PUT /roles/{{principal}}"),
    };
    ApiError::Forbidden(format!("{method} {pattern} needs the {needs} role; {has}"))
}

/// The refusal of a caller whose ARN names no IAM role or user (403).
pub(crate) fn no_principal() -> ApiError {
    ApiError::Forbidden(
        "the caller is not an IAM role session or an IAM user, so it has no role; call with a role or user an administrator granted one".into(),
    )
}
