//! HMAC-SHA256 signatures over key and value.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{LayerError, ValueLayer};

/// Marks a signed value; the envelope starts with another byte, the compression layer with a third.
const MARKER: u8 = 0xA5;
const TAG_LEN: usize = 32;
/// Binds signatures to this layer and format, so a MAC made for something else never verifies here.
const CONTEXT: &[u8] = b"cache-rs value signature v1";
/// Shorter secrets are refused: HMAC is only as strong as its key.
const MIN_SECRET_LEN: usize = 16;

/// Signs every value with HMAC-SHA256 over its key and bytes, and reads only values that verify.
///
/// Against whoever can write to the backend (a shared Redis, a compromised neighbour): a changed value, a
/// value copied under another key, a value written without the secret, or one written before signing was
/// turned on all read as misses (logged and counted in `decode_errors`), never as data. The algorithm is fixed
/// here, never taken from stored bytes, and tags are compared in constant time. To rotate the secret, sign
/// with the new one and keep accepting the old one ([`Sign::accept_old`]) until entries written with it have
/// expired.
///
/// ```
/// use cache_core::{layer::Sign, Cache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::builder().value_layer(Sign::new(b"a secret of at least 16 bytes")?).build();
/// cache.set("user:1", &"ada", None).await?;
/// assert_eq!(cache.get::<String>("user:1").await?.as_deref(), Some("ada"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sign {
    /// The secret that signs, then those still accepted for reads.
    keys: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for Sign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Sign")
            .field("secrets", &self.keys.len())
            .finish()
    }
}

fn mac(secret: &[u8]) -> Result<Hmac<Sha256>, LayerError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(LayerError::new(
            "sign",
            "the secret is shorter than 16 bytes",
        ));
    }
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| LayerError::new("sign", "unusable secret"))
}

impl Sign {
    /// Signs with `secret` (at least 16 bytes; use 32 random bytes).
    ///
    /// ```
    /// assert!(cache_core::layer::Sign::new(b"too short").is_err());
    /// assert!(cache_core::layer::Sign::new(b"0123456789abcdef0123456789abcdef").is_ok());
    /// ```
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, LayerError> {
        Ok(Self {
            keys: vec![mac(secret.as_ref())?],
        })
    }

    /// Also accepts values signed with an earlier `secret` (key rotation); new values are signed with the one
    /// given to [`Sign::new`].
    ///
    /// ```
    /// let layer = cache_core::layer::Sign::new(b"the new secret, 32 bytes long...")?
    ///     .accept_old(b"the old secret, 32 bytes long...")?;
    /// # let _ = layer; Ok::<(), cache_core::layer::LayerError>(())
    /// ```
    pub fn accept_old(mut self, secret: impl AsRef<[u8]>) -> Result<Self, LayerError> {
        self.keys.push(mac(secret.as_ref())?);
        Ok(self)
    }

    fn tagged(key_mac: &Hmac<Sha256>, key: &str, value: &[u8]) -> Hmac<Sha256> {
        let mut mac = key_mac.clone();
        mac.update(CONTEXT);
        // The key's length first, so that key and value cannot trade bytes.
        mac.update(&(key.len() as u64).to_le_bytes());
        mac.update(key.as_bytes());
        mac.update(value);
        mac
    }
}

impl ValueLayer for Sign {
    fn name(&self) -> &'static str {
        "sign"
    }

    fn seal(&self, key: &str, value: Vec<u8>) -> Vec<u8> {
        let tag = Self::tagged(&self.keys[0], key, &value)
            .finalize()
            .into_bytes();
        let mut out = Vec::with_capacity(1 + TAG_LEN + value.len());
        out.push(MARKER);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&value);
        out
    }

    fn open<'a>(&self, key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, LayerError> {
        let refuse = |reason| LayerError::new("sign", reason);
        if stored.first() != Some(&MARKER) || stored.len() < 1 + TAG_LEN {
            return Err(refuse("the value is not signed"));
        }
        let (tag, value) = stored[1..].split_at(TAG_LEN);
        for key_mac in &self.keys {
            // `verify_slice` compares in constant time.
            if Self::tagged(key_mac, key, value).verify_slice(tag).is_ok() {
                return Ok(Cow::Borrowed(value));
            }
        }
        Err(refuse("the signature does not match this key and value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn verifies_only_the_same_key_and_value_under_a_known_secret() {
        let layer = Sign::new(SECRET).unwrap();
        let sealed = layer.seal("user:1", b"ada".to_vec());
        assert_eq!(layer.open("user:1", &sealed).unwrap().as_ref(), b"ada");
        assert!(
            layer.open("user:2", &sealed).is_err(),
            "copied under another key"
        );
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(
                layer.open("user:1", &flipped).is_err(),
                "bit flip at {i} accepted"
            );
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(layer.open("user:1", &longer).is_err());
        assert!(layer.open("user:1", b"ada").is_err(), "unsigned");
        assert!(layer.open("user:1", &sealed[..20]).is_err(), "truncated");
        let other = Sign::new(b"another secret of enough length!").unwrap();
        assert!(other.open("user:1", &sealed).is_err(), "another secret");
        // Key and value cannot trade bytes: "ab" + "c" and "a" + "bc" sign differently.
        assert_ne!(
            layer.seal("ab", b"c".to_vec()),
            layer.seal("a", b"bc".to_vec())
        );
    }

    #[test]
    fn rotation_accepts_old_values_and_signs_with_the_new_secret() {
        let old = Sign::new(SECRET).unwrap();
        let written_before = old.seal("k", b"v".to_vec());
        let rotated = Sign::new(b"the new secret, 32 bytes long...")
            .unwrap()
            .accept_old(SECRET)
            .unwrap();
        assert_eq!(rotated.open("k", &written_before).unwrap().as_ref(), b"v");
        let written_after = rotated.seal("k", b"v".to_vec());
        assert!(
            old.open("k", &written_after).is_err(),
            "signed with the new secret"
        );
        assert!(format!("{rotated:?}").contains("secrets: 2"));
    }
}
