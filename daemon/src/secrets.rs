//! Secrets served by the build's client over its session: the daemon asks for a
//! secret by id when a RUN mounts it and never stores the value.

use std::sync::Arc;

use buildd_engine::session::{MAX_SECRET_SIZE, SecretStore, SecretValue, SessionError};
use buildd_proto::control::{SecretRequest, server_message::Msg};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

use crate::session::{Answer, Session};

/// The secrets of one build's client.
#[derive(Debug)]
pub struct SessionSecrets {
    pub session: Arc<Session>,
}

impl SecretStore for SessionSecrets {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SecretValue>, SessionError>> {
        async move {
            let fail = |message: String| SessionError::Secret {
                id: id.to_owned(),
                message,
            };
            let rid = self.session.next_id();
            let mut answers = self
                .session
                .request(
                    rid,
                    Msg::Secret(SecretRequest {
                        id: rid,
                        secret_id: id.to_owned(),
                    }),
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
            match answers.next().await.map_err(|e| fail(e.to_string()))? {
                Answer::Secret(mut s) => {
                    let value = Zeroizing::new(std::mem::take(&mut s.value));
                    if !s.found {
                        return Ok(None);
                    }
                    if value.len() > MAX_SECRET_SIZE {
                        return Err(fail(format!("larger than {MAX_SECRET_SIZE} bytes")));
                    }
                    Ok(Some(value))
                }
                _ => Err(fail(answers.unexpected().to_string())),
            }
        }
        .boxed()
    }
}
