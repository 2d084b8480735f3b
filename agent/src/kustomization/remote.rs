//! `spec.kubeConfig`: a Kustomization that applies to another cluster, as Flux's does. The
//! kubeconfig comes from a Secret in the Kustomization's namespace (key `value`, else
//! `value.yaml`, unless `secretRef.key` names one); objects are applied, pruned and
//! health-checked there, while the Kustomization, its dependencies and its status stay in
//! the agent's own cluster.
//!
//! A kubeconfig from a Secret must not make the agent run a program or read its own files:
//! exec credential plugins, auth providers and file references are refused (Flux refuses
//! exec plugins unless its operator allows them).

use api::meta::KubeConfigReference;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Why the remote cluster's client could not be made. Messages name the Secret and key,
/// never what they hold.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("spec.kubeConfig.configMapRef (workload identity) is not supported by this agent")]
    ConfigMapRef,
    #[error("spec.kubeConfig needs a secretRef")]
    NoSecretRef,
    #[error("failed to read the kubeconfig Secret '{namespace}/{name}': {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the kubeconfig Secret '{namespace}/{name}' was not found")]
    NotFound { namespace: String, name: String },
    #[error("the kubeconfig Secret '{namespace}/{name}' has no key {keys}")]
    NoKey {
        namespace: String,
        name: String,
        keys: String,
    },
    #[error("key '{key}' of the Secret '{namespace}/{name}' is not a valid kubeconfig")]
    Invalid {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "the kubeconfig in Secret '{namespace}/{name}' uses {what}, which a kubeconfig from a Secret may not"
    )]
    Unsafe {
        namespace: String,
        name: String,
        what: &'static str,
    },
}

/// The client of the cluster `reference` points at, read with `local` (the client the
/// reconcile uses in the agent's own cluster).
pub async fn client(
    local: &Client,
    namespace: &str,
    reference: &KubeConfigReference,
) -> Result<Client, RemoteError> {
    if reference.config_map_ref.is_some() && reference.secret_ref.is_none() {
        return Err(RemoteError::ConfigMapRef);
    }
    let secret_ref = reference
        .secret_ref
        .as_ref()
        .ok_or(RemoteError::NoSecretRef)?;
    let name = secret_ref.name.clone();
    let secret = Api::<Secret>::namespaced(local.clone(), namespace)
        .get_opt(&name)
        .await
        .map_err(|source| RemoteError::Read {
            namespace: namespace.to_string(),
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| RemoteError::NotFound {
            namespace: namespace.to_string(),
            name: name.clone(),
        })?;
    let keys: Vec<&str> = match secret_ref.key.as_deref() {
        Some(key) if !key.is_empty() => vec![key],
        _ => vec!["value", "value.yaml"],
    };
    let data = secret.data.unwrap_or_default();
    let (key, bytes) = keys
        .iter()
        .find_map(|key| data.get(*key).map(|v| (key.to_string(), v.0.clone())))
        .ok_or_else(|| RemoteError::NoKey {
            namespace: namespace.to_string(),
            name: name.clone(),
            keys: keys.join(" or "),
        })?;
    let invalid = || RemoteError::Invalid {
        namespace: namespace.to_string(),
        name: name.clone(),
        key: key.clone(),
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|_| invalid())?;
    if let Some(what) = unsafe_part(&kubeconfig) {
        return Err(RemoteError::Unsafe {
            namespace: namespace.to_string(),
            name,
            what,
        });
    }
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|_| invalid())?;
    Client::try_from(config).map_err(|_| invalid())
}

/// What in `kubeconfig` would run a program or read the agent's files, if anything.
fn unsafe_part(kubeconfig: &Kubeconfig) -> Option<&'static str> {
    for user in kubeconfig
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref())
    {
        if user.exec.is_some() {
            return Some("an exec credential plugin");
        }
        if user.auth_provider.is_some() {
            return Some("an auth provider");
        }
        if user.token_file.is_some()
            || user.client_certificate.is_some()
            || user.client_key.is_some()
        {
            return Some("a file reference");
        }
    }
    let file_ca = kubeconfig
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .any(|c| c.certificate_authority.is_some());
    file_ca.then_some("a file reference")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(user: &str, cluster: &str) -> Kubeconfig {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster}users:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        );
        Kubeconfig::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn programs_and_local_files_are_refused_and_inline_credentials_are_not() {
        assert_eq!(unsafe_part(&parsed("    token: abc\n", "")), None);
        assert_eq!(
            unsafe_part(&parsed(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n",
                ""
            )),
            Some("an exec credential plugin")
        );
        assert_eq!(
            unsafe_part(&parsed("    tokenFile: /var/run/secrets/token\n", "")),
            Some("a file reference")
        );
        assert_eq!(
            unsafe_part(&parsed("    client-certificate: /etc/agent.crt\n", "")),
            Some("a file reference")
        );
        assert_eq!(
            unsafe_part(&parsed(
                "    token: abc\n",
                "    certificate-authority: /etc/ca.crt\n"
            )),
            Some("a file reference")
        );
    }
}
