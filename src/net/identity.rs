//! Node identity: the Ed25519 key pair kept in the data dir, the self-signed certificate made
//! from it, and how a certificate becomes its `NodeId` (the crate's one peer name, defined in
//! `node_id`: the SHA-256 fingerprint of the public key).
//!
//! Owns key files and fingerprints; must not open sockets (that is `transport`).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::NetError;

/// File name of the node's private key (PKCS#8 PEM) inside the data dir.
pub const KEY_FILE: &str = "node_key.pem";

pub use crate::node_id::NodeId;

impl NodeId {
    /// The fingerprint of a DER certificate's public key, or an error if it does not parse.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<NodeId, NetError> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| NetError::Certificate(format!("peer certificate does not parse: {e}")))?;
        let spki = parsed.subject_public_key_info();
        Ok(NodeId(Sha256::digest(spki.as_ref()).into()))
    }
}

/// This node's key pair and certificate.
pub struct Identity {
    key_der: Vec<u8>,
    cert: CertificateDer<'static>,
    id: NodeId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Identity {
    /// A fresh in-memory identity (tests, benchmarks, throw-away nodes).
    pub fn generate() -> Result<Identity, NetError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| NetError::Certificate(format!("cannot generate a key pair: {e}")))?;
        Identity::from_key(key)
    }

    /// Loads the key from `dir/node_key.pem`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Identity, NetError> {
        let path = dir.join(KEY_FILE);
        if path.exists() {
            let pem = fs::read_to_string(&path).map_err(|e| NetError::Io(path.clone(), e))?;
            let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| {
                NetError::Certificate(format!(
                    "{} is not a PKCS#8 PEM key ({e}); move it away to make a new identity",
                    path.display()
                ))
            })?;
            return Identity::from_key(key);
        }
        fs::create_dir_all(dir).map_err(|e| NetError::Io(dir.to_path_buf(), e))?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| NetError::Certificate(format!("cannot generate a key pair: {e}")))?;
        write_private(&path, key.serialize_pem().as_bytes())?;
        Identity::from_key(key)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Identity, NetError> {
        let params = rcgen::CertificateParams::new(vec!["hashgrad".to_string()])
            .map_err(|e| NetError::Certificate(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| NetError::Certificate(format!("cannot self-sign: {e}")))?;
        let cert = cert.der().clone();
        let id = NodeId::from_certificate(&cert)?;
        Ok(Identity {
            key_der: key.serialize_der(),
            cert,
            id,
        })
    }

    /// This node's fingerprint.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The self-signed certificate (DER).
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The private key (PKCS#8 DER) for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Writes `bytes` to a new file readable only by its owner.
fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), NetError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| NetError::Io(path.clone(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| NetError::Io(path.clone(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_across_loads_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Identity::load_or_create(dir.path()).expect("create");
        let second = Identity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.id(), second.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = Identity::generate().expect("generate");
        assert_ne!(first.id(), other.id());
    }

    #[test]
    fn corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
        let error = Identity::load_or_create(dir.path()).expect_err("must fail");
        assert!(error.to_string().contains("node_key.pem"), "{error}");
    }

    #[test]
    fn fingerprints_parse_from_hex() {
        let id = Identity::generate().expect("generate").id();
        assert_eq!(id.to_string().parse::<NodeId>().expect("parse"), id);
        assert!("abcd".parse::<NodeId>().is_err());
        assert!("zz".parse::<NodeId>().is_err());
    }
}
