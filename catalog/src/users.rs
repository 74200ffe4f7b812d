//! Who may connect, and what they may do (`[[users]]` in the model).
//!
//! ```text
//! [[users]]  name = "amoeba"  role = "admin"                    everything, incl. REFRESH CUBE
//! [[users]]  name = "analyst" role = "analyst"                  reads every unit
//! [[users]]  name = "li.lei"  role = "unit_leader" unit = "U07"  their unit and its descendants
//! ```
//!
//! Roles are data, like the unit tree: a unit leader is bound to a unit of the tree, so a
//! reorganisation is a model change. The model never holds a password (spec: SCRAM verifiers
//! or the environment, in the frontend); here are only names, roles and units, validated like
//! every other section (a leader of an unknown unit, a user declared twice, a unit on a role
//! that has none are errors naming the file, line and key).

use serde::Deserialize;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything and runs the administrative commands (`REFRESH CUBE`).
    Admin,
    /// Reads every unit.
    Analyst,
    /// Reads the rows of one unit and its descendants.
    UnitLeader,
}

impl Role {
    /// The role as written in the model.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::UnitLeader => "unit_leader",
        }
    }
}

/// A declared user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name a client connects as.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The unit a unit leader leads (`None` for the other roles).
    pub unit: Option<String>,
}

/// `[[users]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub(crate) name: String,
    pub(crate) role: Role,
    #[serde(default)]
    pub(crate) unit: Option<String>,
}

/// Validates one declaration against the users before it and the unit tree; an error is
/// `(key, reason)` for the model's error (`users[i].<key>`).
pub(crate) fn validate(
    raw: &RawUser,
    earlier: &[User],
    unit_exists: impl Fn(&str) -> bool,
) -> std::result::Result<User, (&'static str, String)> {
    if raw.name.is_empty() || raw.name.contains(|c: char| c.is_whitespace() || c == '"') {
        return Err(("name", format!("invalid user name '{}'", raw.name)));
    }
    if earlier.iter().any(|u| u.name == raw.name) {
        return Err(("name", format!("user '{}' is declared twice", raw.name)));
    }
    match (raw.role, &raw.unit) {
        (Role::UnitLeader, None) => Err((
            "unit",
            format!(
                "user '{}' is a unit_leader: name the unit they lead (unit = \"U01\")",
                raw.name
            ),
        )),
        (Role::UnitLeader, Some(unit)) if !unit_exists(unit) => Err((
            "unit",
            format!("unknown unit '{unit}' (declare it in [[units]])"),
        )),
        (role @ (Role::Admin | Role::Analyst), Some(_)) => Err((
            "unit",
            format!(
                "user '{}' is {}: only a unit_leader is bound to a unit",
                raw.name,
                role.as_str()
            ),
        )),
        _ => Ok(User {
            name: raw.name.clone(),
            role: raw.role,
            unit: raw.unit.clone(),
        }),
    }
}
