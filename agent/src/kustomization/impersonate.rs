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

    #[test]
    fn service_accounts_are_impersonated_by_their_kubernetes_user_name() {
        assert_eq!(
            service_account_user("team-a", "deployer"),
            "system:serviceaccount:team-a:deployer"
        );
    }
}
