//! `spec.serviceAccountName`: every API call of a reconcile is made as that service account
//! (Kubernetes user impersonation), so that a tenant's Kustomization can do no more than
//! its account's RBAC allows.

use kube::Client;
use kube::client::Body;

/// The user name Kubernetes gives a service account.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A client that sends every request of `client` as `user`; `None` when `user` cannot be
/// sent as a header (then nothing may run unimpersonated: the caller fails the reconcile).
pub fn impersonating(client: &Client, user: &str) -> Option<Client> {
    let inner = client.clone();
    let value = http::HeaderValue::from_str(user).ok()?;
    let service = tower::service_fn(move |mut request: http::Request<Body>| {
        let inner = inner.clone();
        request
            .headers_mut()
            .insert("Impersonate-User", value.clone());
        async move { inner.send(request).await }
    });
    Some(Client::new(service, client.default_namespace().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn every_request_of_the_client_carries_the_impersonated_user() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let base = Client::new(
            tower::service_fn(move |request: http::Request<Body>| {
                let user = request
                    .headers()
                    .get("Impersonate-User")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Ok(mut seen) = record.lock() {
                    seen.push(user);
                }
                async move {
                    http::Response::builder()
                        .status(200)
                        .body(Body::from(b"{}".to_vec()))
                        .map_err(|e| Box::new(e) as tower::BoxError)
                }
            }),
            "default",
        );
        let user = service_account_user("team-a", "deployer");
        let client = impersonating(&base, &user).unwrap_or_else(|| panic!("no client"));
        for _ in 0..2 {
            let request = http::Request::get("/api")
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}"));
            client.send(request).await.unwrap_or_else(|e| panic!("{e}"));
        }
        base.send(
            http::Request::get("/api")
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen, [Some(user.clone()), Some(user), None]);
        // A name that cannot be a header never yields a client that would run unimpersonated.
        assert!(impersonating(&base, "bad\nname").is_none());
    }

    #[test]
    fn service_accounts_are_impersonated_by_their_kubernetes_user_name() {
        assert_eq!(
            service_account_user("team-a", "deployer"),
            "system:serviceaccount:team-a:deployer"
        );
    }
}
