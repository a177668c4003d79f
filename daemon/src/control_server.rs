//! The gRPC Control service: thin adapters from requests to the daemon's
//! functions, and from their errors to statuses.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use buildd_proto::control::control_server::Control;
use buildd_proto::control::{
    ClientMessage, DiskUsageRequest, DiskUsageResponse, InfoRequest, InfoResponse,
    ListImagesRequest, ListImagesResponse, PruneRequest, PruneResponse, ServerMessage,
    SolveRequest, SolveResponse, StatusRequest, StatusResponse,
};
use futures_util::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::daemon::Daemon;
use crate::peer::Peer;
use crate::session::SessionError;
use crate::solve::SolveError;
use crate::status::StatusError;
use crate::usage::UsageError;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct ControlServer {
    daemon: Arc<Daemon>,
}

impl ControlServer {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }

    /// Ends a server stream when the daemon shuts down, so shutdown never waits
    /// for a client to hang up.
    fn until_shutdown<T: Send + 'static>(
        &self,
        s: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Stream_<T> {
        let mut shutdown = self.daemon.shutdown.clone();
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        s.take_until(Box::pin(stop)).boxed()
    }

    fn context_in_use(&self) -> impl Fn(&Path) -> bool + '_ {
        |dir| self.daemon.mirrors.try_exclusive(dir).is_none()
    }
}

#[tonic::async_trait]
impl Control for ControlServer {
    async fn solve(&self, req: Request<SolveRequest>) -> Result<Response<SolveResponse>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let build_ref = req.r#ref.clone();
        tracing::info!(%build_ref, session = %req.session_id, frontend = %req.frontend, %caller, "solve");
        match crate::solve::solve(&self.daemon, req, &caller).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => {
                let status = solve_status(&e);
                tracing::info!(%build_ref, error = %e, "solve failed");
                Err(status)
            }
        }
    }

    type StatusStream = Stream_<StatusResponse>;

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner().r#ref;
        if r.is_empty() {
            return Err(Status::invalid_argument("status needs a build ref"));
        }
        let events = self
            .daemon
            .status
            .subscribe(&r, &caller)
            .map_err(|e| status_status(&e))?
            .map(|ev| ev.map_err(|e| status_status(&e)));
        Ok(Response::new(self.until_shutdown(events)))
    }

    type SessionStream = Stream_<ServerMessage>;

    async fn session(
        &self,
        req: Request<Streaming<ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let caller = caller(&req)?;
        let incoming = req.into_inner();
        let rx = self
            .daemon
            .sessions
            .open(incoming, caller, self.daemon.shutdown.clone())
            .await
            .map_err(|e| session_status(&e))?;
        let out = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(self.until_shutdown(out)))
    }

    async fn disk_usage(
        &self,
        req: Request<DiskUsageRequest>,
    ) -> Result<Response<DiskUsageResponse>, Status> {
        let filters = req.into_inner().filters;
        let root = self.daemon.engine.root.clone();
        let in_use = self.context_in_use();
        let mut records = tokio::task::block_in_place(|| crate::usage::disk_usage(&root, &in_use))
            .map_err(|e| usage_status(&e))?;
        if !filters.is_empty() {
            let kinds = filters
                .iter()
                .map(|f| match f.split_once('=') {
                    Some(("kind" | "type", k)) => Ok(k.to_owned()),
                    _ => Err(usage_status(&UsageError::Filter(f.clone()))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            records.retain(|r| kinds.contains(&r.kind));
        }
        Ok(Response::new(DiskUsageResponse { records }))
    }

    async fn prune(&self, req: Request<PruneRequest>) -> Result<Response<PruneResponse>, Status> {
        let req = req.into_inner();
        // No build runs while prune looks and removes.
        let _exclusive = self.daemon.storage.write().await;
        let root = self.daemon.engine.root.clone();
        let in_use = self.context_in_use();
        let resp = tokio::task::block_in_place(|| crate::usage::prune(&root, &req, &in_use))
            .map_err(|e| usage_status(&e))?;
        tracing::info!(
            removed = resp.removed.len(),
            bytes = resp.reclaimed_bytes,
            "pruned"
        );
        Ok(Response::new(resp))
    }

    async fn list_images(
        &self,
        _req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        tokio::task::block_in_place(|| crate::info::list_images(&self.daemon))
            .map(Response::new)
            .map_err(|e| Status::internal(e.to_string()))
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(crate::info::info(&self.daemon)))
    }
}

/// The caller a request comes from; every listener the daemon serves names one.
fn caller<T>(req: &Request<T>) -> Result<Peer, Status> {
    Peer::of(req).map_err(|e| Status::permission_denied(e.to_string()))
}

fn status_status(e: &StatusError) -> Status {
    let code = match e {
        StatusError::Forbidden(_) => Code::PermissionDenied,
        StatusError::Running(_) => Code::AlreadyExists,
        StatusError::InvalidRef(_) => Code::InvalidArgument,
    };
    Status::new(code, e.to_string())
}

fn session_status(e: &SessionError) -> Status {
    let code = match e {
        SessionError::Forbidden(_) => Code::PermissionDenied,
        SessionError::NoHello | SessionError::InvalidId(_) => Code::InvalidArgument,
        SessionError::Duplicate(_) => Code::AlreadyExists,
        SessionError::Missing(_) => Code::InvalidArgument,
        SessionError::Closed(_) => Code::Cancelled,
        SessionError::Client { .. } => Code::Unknown,
        SessionError::Unexpected { .. } => Code::InvalidArgument,
    };
    Status::new(code, e.to_string())
}

fn usage_status(e: &UsageError) -> Status {
    match e {
        UsageError::Filter(_) => Status::invalid_argument(e.to_string()),
        UsageError::Storage { .. } => Status::internal(e.to_string()),
    }
}

/// How a failed Solve is reported: the client's mistakes as InvalidArgument, a
/// failing build step as Unknown (as BuildKit does), the daemon's faults as
/// Internal.
pub fn solve_status(e: &SolveError) -> Status {
    use buildd_engine::build::BuildError;
    let code = match e {
        SolveError::UnknownFrontend(_) | SolveError::Definition(_) | SolveError::Invalid(_) => {
            Code::InvalidArgument
        }
        SolveError::CacheUnsupported => Code::Unimplemented,
        SolveError::EntitlementDenied(_) => Code::PermissionDenied,
        SolveError::Session(s) => session_status(s).code(),
        SolveError::Sync(s) if s.is_client_error() => Code::InvalidArgument,
        SolveError::Sync(crate::context_sync::SyncError::Session(s)) => session_status(s).code(),
        SolveError::Sync(_) => Code::Internal,
        SolveError::Exporter(x) => match x {
            crate::exporters::ExporterError::Invalid { .. } => Code::InvalidArgument,
            crate::exporters::ExporterError::Unsupported { .. } => Code::Unimplemented,
            crate::exporters::ExporterError::Session { .. }
            | crate::exporters::ExporterError::Client { .. } => Code::Aborted,
            crate::exporters::ExporterError::Io { .. } => Code::Internal,
        },
        SolveError::Status(s) => status_status(s).code(),
        SolveError::Build(b) => match b {
            BuildError::Frontend(_)
            | BuildError::Dockerignore(_)
            | BuildError::UnknownEntitlement(_)
            | BuildError::SourceDateEpoch(_)
            | BuildError::Images(buildd_engine::images::ImageError::InvalidName(_)) => {
                Code::InvalidArgument
            }
            BuildError::Solve(_) | BuildError::LocalResult => Code::Unknown,
            _ => Code::Internal,
        },
        SolveError::Cancelled(_) => Code::Cancelled,
        SolveError::Io { .. } => Code::Internal,
    };
    Status::new(code, e.to_string())
}
