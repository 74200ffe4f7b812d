//! Who may connect, and what they may do (`[[users]]` in the model).
//!
//! ```text
//! [[users]]  name = "amoeba"  role = "admin"                    everything, incl. REFRESH CUBE
//! [[users]]  name = "analyst" role = "analyst"                  reads every unit
//! [[users]]  name = "li.lei"  role = "unit_leader" unit = "U07"  their unit and its descendants
//!            password = "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"   (a verifier)
//!            password_env = "AMOEBA_PASSWORD_LI"                            (or the environment)
//! ```
//!
//! Roles are data, like the unit tree: a unit leader is bound to a unit of the tree, so a
//! reorganisation is a model change. The model never holds a password: either a SCRAM-SHA-256
//! verifier (PostgreSQL's `rolpassword` format; `amoeba password` prints one), which proves a
//! password without revealing it, or the name of an environment variable the server reads when
//! it starts. Declarations are validated like every other section (a leader of an unknown
//! unit, a user declared twice, a unit on a role that has none, a password written in clear
//! are errors naming the file, line and key).

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

/// Where a user's password is proved from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// A SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`).
    Verifier(String),
    /// The environment variable holding the password (read when the server starts).
    Env(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Verifier(_) => f.write_str("Verifier(…)"),
            Password::Env(var) => write!(f, "Env({var})"),
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
    /// How the password is proved (`None`: the user cannot log in with password
    /// authentication).
    pub password: Option<Password>,
}

/// `[[users]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub(crate) name: String,
    pub(crate) role: Role,
    #[serde(default)]
    pub(crate) unit: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<String>,
    #[serde(default)]
    pub(crate) password_env: Option<String>,
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
    let password = match (&raw.password, &raw.password_env) {
        (Some(_), Some(_)) => {
            return Err((
                "password",
                "write either password (a verifier) or password_env, not both".to_string(),
            ));
        }
        (Some(text), None) => {
            if !looks_like_verifier(text) {
                return Err((
                    "password",
                    format!(
                        "user '{}': not a SCRAM-SHA-256 verifier — never write a password in the \
                         model: `amoeba password` prints the verifier of one, or name an \
                         environment variable with password_env",
                        raw.name
                    ),
                ));
            }
            Some(Password::Verifier(text.clone()))
        }
        (None, Some(var)) => {
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(("password_env", format!("invalid variable name '{var}'")));
            }
            Some(Password::Env(var.clone()))
        }
        (None, None) => None,
    };
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
            password,
        }),
    }
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<key>:<key>` in shape (the server decodes it in full).
fn looks_like_verifier(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let parts: Vec<&str> = rest.split(['$', ':']).collect();
    let base64 = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    };
    matches!(parts.as_slice(), [iterations, salt, stored, server]
        if iterations.parse::<u32>().is_ok_and(|n| n > 0)
            && base64(salt) && base64(stored) && base64(server))
}
