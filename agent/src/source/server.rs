//! The artifact HTTP server, as source-controller serves its storage: `GET /<sha256>.tar.gz`.
//!
//! Only names of the form `<64 hex>.tar.gz` are served, straight from the store root, so
//! no request can reach the history files or anything outside the store. Range requests,
//! `ETag` and `Last-Modified` come from actix-files.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::artifact::ArtifactStore;

/// Registers the artifact routes on an actix-web app.
pub fn configure(store: Arc<ArtifactStore>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(store))
            .route("/{file}", web::get().to(serve_artifact))
            .route("/{file}", web::head().to(serve_artifact));
    }
}

/// Binds the server on `addr` (port 0 picks a free port) and returns it with the bound
/// address; the caller runs or spawns the returned server.
pub fn bind(
    addr: SocketAddr,
    store: Arc<ArtifactStore>,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let server = HttpServer::new(move || App::new().configure(configure(Arc::clone(&store))))
        .workers(1)
        .disable_signals()
        .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn serve_artifact(
    req: HttpRequest,
    store: web::Data<ArtifactStore>,
    file: web::Path<String>,
) -> HttpResponse {
    let Some(digest) = file.strip_suffix(".tar.gz") else {
        return HttpResponse::NotFound().finish();
    };
    let Some(path) = store.blob_path(digest) else {
        return HttpResponse::NotFound().finish();
    };
    match actix_files::NamedFile::open_async(&path).await {
        Ok(named) => named
            .set_content_type(actix_web::mime::APPLICATION_OCTET_STREAM)
            .disable_content_disposition()
            .into_response(&req),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}
