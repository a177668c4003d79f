//! Registry credentials served by the build's client over its session: the daemon
//! asks for a registry host's credentials when it first talks to that registry, so
//! they stay in the client's docker config and are never stored by the daemon.

use std::sync::Arc;

use buildd_proto::control::{CredentialsRequest, server_message::Msg};
use buildd_registry::{Credential, CredentialError, CredentialSource};
use tokio::runtime::Handle;

use crate::session::{Answer, Session};

/// The registry credentials of one build's client.
pub struct SessionCredentials {
    pub session: Arc<Session>,
    /// The runtime the session lives on; the registry client asks from a blocking
    /// thread.
    pub handle: Handle,
}

impl CredentialSource for SessionCredentials {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let fail = |message: String| CredentialError::Unavailable {
            registry: registry.to_owned(),
            message,
        };
        self.handle.block_on(async {
            let id = self.session.next_id();
            let mut answers = self
                .session
                .request(
                    id,
                    Msg::Credentials(CredentialsRequest {
                        id,
                        host: registry.to_owned(),
                    }),
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
            match answers.next().await.map_err(|e| fail(e.to_string()))? {
                Answer::Credentials(c) if c.username.is_empty() && c.secret.is_empty() => Ok(None),
                Answer::Credentials(c) => Ok(Some(Credential {
                    username: c.username,
                    secret: c.secret,
                })),
                _ => Err(fail(answers.unexpected().to_string())),
            }
        })
    }
}
