//! Password authentication: SCRAM-SHA-256 (RFC 5802, RFC 7677), the method PostgreSQL uses
//! by default, against verifiers — never against stored passwords.
//!
//! ```text
//!  client                                   server (one `ConnectionStartup` per connection)
//!  StartupMessage(user) ───────────────────► AuthenticationSASL [SCRAM-SHA-256]
//!  SASLInitialResponse "n,,n=,r=<cnonce>" ─► AuthenticationSASLContinue "r=<cnonce><snonce>,s=<salt>,i=<n>"
//!  SASLResponse "c=biws,r=…,p=<proof>" ────► verify: H(proof ⊕ HMAC(StoredKey, AuthMessage)) = StoredKey
//!                                            AuthenticationSASLFinal "v=<HMAC(ServerKey, AuthMessage)>"
//!                                            AuthenticationOk … ReadyForQuery
//! ```
//!
//! A verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, PostgreSQL's
//! `pg_authid.rolpassword` format) proves a password without revealing it: the model may
//! hold verifiers; a password read from the environment is turned into one when the server
//! starts and then dropped. An unknown user goes through the same exchange with a made-up
//! salt and fails at the end exactly like a wrong password (SQLSTATE 28P01), so that the
//! server does not tell which user names exist.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::{Sink, SinkExt};
use ring::{digest, hmac, pbkdf2};
use tokio::sync::Mutex;

use amoeba_catalog::Model;
use amoeba_catalog::users::Password;

use super::cancel::QueryCancel;
use super::pg_error::fatal;
use crate::error::{EngineError, Result};

/// The SASL mechanism offered.
const MECHANISM: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations of verifiers made from a password (PostgreSQL's default).
pub(crate) const DEFAULT_ITERATIONS: u32 = 4096;

/// Who may log in.
#[derive(Debug, Clone)]
pub enum Auth {
    /// SCRAM-SHA-256 against these verifiers (the model's users).
    Scram(Credentials),
    /// No password: any client may connect as any name (roles still follow the name). For a
    /// laptop or a test, never for a server others can reach.
    Trust,
}

/// What the server keeps of a password: enough to check a proof, not to make one.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(…)")
    }
}

impl std::fmt::Display for ScramVerifier {
    /// PostgreSQL's format, as `pg_authid.rolpassword` holds it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

impl ScramVerifier {
    /// The verifier of `password` with `salt` and `iterations` (the password is normalised
    /// with SASLprep, as clients do).
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier of `password` with a random salt.
    pub fn generate(password: &str) -> ScramVerifier {
        ScramVerifier::from_password(password, &random_bytes::<16>(), DEFAULT_ITERATIONS)
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).
    pub fn parse(text: &str) -> Result<ScramVerifier, String> {
        let bad = |why: &str| {
            format!(
                "{why}: expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> \
                 (`amoeba password` prints one)"
            )
        };
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| bad("not a SCRAM-SHA-256 verifier"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| bad("no keys"))?;
        let (iterations, salt) = params.split_once(':').ok_or_else(|| bad("no salt"))?;
        let (stored, server) = keys.split_once(':').ok_or_else(|| bad("one key"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("bad iteration count"))?;
        let decode = |part: &str, what: &str| B64.decode(part).map_err(|_| bad(what));
        let key = |part: &str, what: &str| -> Result<[u8; 32], String> {
            decode(part, what)?
                .try_into()
                .map_err(|_| bad(&format!("{what} is not 32 bytes")))
        };
        Ok(ScramVerifier {
            iterations,
            salt: decode(salt, "bad salt")?,
            stored_key: key(stored, "StoredKey")?,
            server_key: key(server, "ServerKey")?,
        })
    }
}

/// The verifiers of the users who may connect, by user name.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    verifiers: HashMap<String, ScramVerifier>,
    /// Made-up salts for unknown users come from this (so they look stable per name).
    mock_secret: [u8; 16],
}

impl Credentials {
    /// No user yet.
    pub fn new() -> Credentials {
        Credentials {
            verifiers: HashMap::new(),
            mock_secret: random_bytes::<16>(),
        }
    }

    /// Adds (or replaces) a user's verifier.
    pub fn insert(&mut self, user: impl Into<String>, verifier: ScramVerifier) {
        self.verifiers.insert(user.into(), verifier);
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.verifiers.is_empty()
    }

    /// The verifiers of `model`'s users: a `password` (a verifier) as written; a
    /// `password_env` read through `env` now and turned into a verifier. Returns them with a
    /// warning per user who cannot log in (no password, or the variable is not set); a
    /// verifier that does not decode is an error naming the user.
    pub fn from_model(
        model: &Model,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Credentials, Vec<String>)> {
        let mut credentials = Credentials::new();
        let mut warnings = Vec::new();
        for user in &model.users {
            match &user.password {
                Some(Password::Verifier(text)) => {
                    let verifier = ScramVerifier::parse(text).map_err(|reason| {
                        EngineError::setup(format!(
                            "{}: user '{}': password: {reason}",
                            model.file, user.name
                        ))
                    })?;
                    credentials.insert(&user.name, verifier);
                }
                Some(Password::Env(var)) => match env(var) {
                    Some(password) if !password.is_empty() => {
                        credentials.insert(&user.name, ScramVerifier::generate(&password));
                    }
                    _ => warnings.push(format!(
                        "user '{}' cannot log in: ${var} is not set",
                        user.name
                    )),
                },
                None => warnings.push(format!(
                    "user '{}' cannot log in: no password or password_env in the model",
                    user.name
                )),
            }
        }
        Ok((credentials, warnings))
    }

    /// The user's verifier, or a mock one (random keys no proof matches) for an unknown user.
    fn verifier(&self, user: &str) -> (ScramVerifier, bool) {
        match self.verifiers.get(user) {
            Some(v) => (v.clone(), true),
            None => {
                let salt = hmac_sha256(&self.mock_secret, user.as_bytes());
                let mock = ScramVerifier {
                    iterations: DEFAULT_ITERATIONS,
                    salt: salt[..16].to_vec(),
                    stored_key: random_bytes::<32>(),
                    server_key: random_bytes::<32>(),
                };
                (mock, false)
            }
        }
    }
}

/// Where one connection's exchange is.
enum Exchange {
    Start,
    /// The server-first message was sent.
    ServerFirstSent {
        verifier: ScramVerifier,
        known: bool,
        nonce: String,
        /// client-first-message-bare "," server-first-message
        auth_prefix: String,
        gs2_header: String,
    },
    Done,
}

/// The startup handler of one connection (pgwire asks the server's handlers for one per
/// connection): TLS required or not, then SCRAM-SHA-256 against `credentials`, or no
/// authentication (`None`: trust).
pub(crate) struct ConnectionStartup {
    credentials: Option<Arc<Credentials>>,
    require_tls: bool,
    connections: Arc<ConnectionManager>,
    pids: Arc<RandomPidSecretKeyGenerator>,
    parameters: DefaultServerParameterProvider,
    exchange: Mutex<Exchange>,
}

impl ConnectionStartup {
    pub(crate) fn new(
        credentials: Option<Arc<Credentials>>,
        require_tls: bool,
        connections: Arc<ConnectionManager>,
        pids: Arc<RandomPidSecretKeyGenerator>,
    ) -> ConnectionStartup {
        ConnectionStartup {
            credentials,
            require_tls,
            connections,
            pids,
            parameters: {
                let mut parameters = DefaultServerParameterProvider::default();
                // Drivers read the version from here (pgjdbc, Npgsql): PostgreSQL's form.
                parameters.server_version = crate::pg_compat::PG_VERSION.to_string();
                parameters
            },
            exchange: Mutex::new(Exchange::Start),
        }
    }

    /// Authentication succeeded: registers the connection (for cancel requests) and sends
    /// AuthenticationOk, the parameters and ReadyForQuery.
    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.connections.register(pid, secret);
        // Under our own key: statements are stopped by `cancel.rs`, planning and streaming.
        client.session_extensions().insert(QueryCancel(handle));
        client.session_extensions().insert(guard);
        finish_authentication(client, &self.parameters).await
    }
}

#[async_trait]
impl StartupHandler for ConnectionStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                if self.require_tls && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server accepts TLS connections only (connect with sslmode=require)"
                            .to_string(),
                    ));
                }
                if self.credentials.is_none() {
                    return self.accept(client).await;
                }
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![MECHANISM.to_string()],
                    )))
                    .await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let Some(credentials) = &self.credentials else {
                    return Err(malformed());
                };
                let mut exchange = self.exchange.lock().await;
                match std::mem::replace(&mut *exchange, Exchange::Done) {
                    Exchange::Start => {
                        let initial = message.into_sasl_initial_response()?;
                        if initial.auth_method != MECHANISM {
                            return Err(fatal(
                                "28000",
                                format!(
                                    "SASL mechanism {} is not supported (use {MECHANISM})",
                                    initial.auth_method
                                ),
                            ));
                        }
                        let data = initial.data.unwrap_or_default();
                        let text = std::str::from_utf8(&data).map_err(|_| malformed())?;
                        let (gs2_header, bare) = split_gs2(text)?;
                        let client_nonce = attribute(bare, 'r').ok_or_else(malformed)?;
                        let (verifier, known) = credentials.verifier(&user);
                        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<18>()));
                        let server_first = format!(
                            "r={nonce},s={},i={}",
                            B64.encode(&verifier.salt),
                            verifier.iterations
                        );
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(
                                    server_first.clone().into_bytes().into(),
                                ),
                            ))
                            .await?;
                        *exchange = Exchange::ServerFirstSent {
                            verifier,
                            known,
                            nonce,
                            auth_prefix: format!("{bare},{server_first}"),
                            gs2_header: gs2_header.to_string(),
                        };
                        Ok(())
                    }
                    Exchange::ServerFirstSent {
                        verifier,
                        known,
                        nonce,
                        auth_prefix,
                        gs2_header,
                    } => {
                        let response = message.into_sasl_response()?;
                        let text = std::str::from_utf8(&response.data).map_err(|_| malformed())?;
                        let (without_proof, proof) =
                            text.rsplit_once(",p=").ok_or_else(malformed)?;
                        let binding = attribute(without_proof, 'c').ok_or_else(malformed)?;
                        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes())
                            || attribute(without_proof, 'r') != Some(nonce.as_str())
                        {
                            return Err(failed(&user));
                        }
                        let proof = B64.decode(proof).map_err(|_| malformed())?;
                        let auth_message = format!("{auth_prefix},{without_proof}");
                        let signature = hmac_sha256(&verifier.stored_key, auth_message.as_bytes());
                        let client_key: Vec<u8> =
                            proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
                        let matches = proof.len() == 32
                            && same_bytes(&sha256(&client_key), &verifier.stored_key);
                        if !(known && matches) {
                            log::info!("authentication failed for user '{user}'");
                            return Err(failed(&user));
                        }
                        let server_signature =
                            hmac_sha256(&verifier.server_key, auth_message.as_bytes());
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(
                                    format!("v={}", B64.encode(server_signature))
                                        .into_bytes()
                                        .into(),
                                ),
                            ))
                            .await?;
                        self.accept(client).await
                    }
                    Exchange::Done => Err(malformed()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// Splits the GS2 header ("n,," or "y,,": no channel binding) from client-first-message-bare.
fn split_gs2(text: &str) -> PgWireResult<(&str, &str)> {
    let header_len = match text.as_bytes().first() {
        Some(b'n' | b'y') => text
            .match_indices(',')
            .nth(1)
            .map(|(i, _)| i + 1)
            .ok_or_else(malformed)?,
        Some(b'p') => {
            return Err(fatal(
                "28000",
                "channel binding (SCRAM-SHA-256-PLUS) is not offered by this server".to_string(),
            ));
        }
        _ => return Err(malformed()),
    };
    Ok((&text[..header_len], &text[header_len..]))
}

/// The value of attribute `name` (`name=value`) of a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

fn failed(user: &str) -> PgWireError {
    fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

fn malformed() -> PgWireError {
    fatal("08P01", "malformed SCRAM message".to_string())
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let normalized = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let mut out = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        normalized.as_bytes(),
        &mut out,
    );
    out
}

/// Equality that takes as long whatever the first difference (no timing hint to an attacker).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system's generator does not fail on the platforms we build for; should it, a
    // zero salt/nonce still authenticates correctly (only less unpredictably).
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
    /// 4096 iterations.
    #[test]
    fn verifiers_match_rfc_7677_and_postgres_format() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let v = ScramVerifier::from_password("pencil", &salt, 4096);
        // Server-final of the RFC's exchange, recomputed from the verifier.
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            B64.encode(hmac_sha256(&v.server_key, auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let text = v.to_string();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{text}"
        );
        assert_eq!(ScramVerifier::parse(&text), Ok(v));
        for bad in [
            "pencil",
            "SCRAM-SHA-256$4096:W22Z$abc",
            "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$YWJj:YWJj",
        ] {
            assert!(ScramVerifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scram_messages_are_split_into_header_and_attributes() {
        assert_eq!(split_gs2("n,,n=,r=abc").ok(), Some(("n,,", "n=,r=abc")));
        assert_eq!(attribute("n=,r=abc,x=1", 'r'), Some("abc"));
        assert_eq!(attribute("c=biws,r=abc", 'p'), None);
        assert!(split_gs2("p=tls-server-end-point,,n=,r=a").is_err());
        assert!(split_gs2("q,,n=,r=a").is_err());
    }
}
