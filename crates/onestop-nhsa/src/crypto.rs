//! The encrypted mode (§5): `input` and `output` are Base64 of SM4 (ECB, PKCS#7) under the
//! institution's 16-byte key, and `cainfo` is Base64 of the raw 64-byte `r‖s` SM2-with-SM3
//! signature over the plain input, with the institution's client id as the SM2 user id.

use base64::Engine;
use ecb::cipher::block_padding::Pkcs7;
use ecb::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit};
use sm2::dsa::signature::{Signer, Verifier};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a cryptographic step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoError(pub String);

/// SM4-ECB-PKCS#7 encryption, Base64 out.
pub fn sm4_encrypt(key: &[u8; 16], plain: &[u8]) -> String {
    let mut buffer = vec![0u8; plain.len() + 16];
    buffer[..plain.len()].copy_from_slice(plain);
    let cipher = ecb::Encryptor::<sm4::Sm4>::new(key.into());
    let sealed = cipher.encrypt_padded::<Pkcs7>(&mut buffer, plain.len()).unwrap_or_default();
    BASE64.encode(sealed)
}

/// Base64 in, SM4-ECB-PKCS#7 decryption.
pub fn sm4_decrypt(key: &[u8; 16], sealed: &str) -> Result<Vec<u8>, CryptoError> {
    let mut buffer = BASE64
        .decode(sealed.trim())
        .map_err(|e| CryptoError(format!("input is not Base64: {e}")))?;
    let cipher = ecb::Decryptor::<sm4::Sm4>::new(key.into());
    let plain = cipher
        .decrypt_padded::<Pkcs7>(&mut buffer)
        .map_err(|_| CryptoError("input does not decrypt with the institution's SM4 key".into()))?;
    Ok(plain.to_vec())
}

/// The SM4 key of an institution: 16 ASCII bytes of its client id, or given in hex.
pub fn sm4_key(text: &str) -> Result<[u8; 16], CryptoError> {
    let bytes = if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| CryptoError(e.to_string()))?
    } else {
        text.as_bytes().to_vec()
    };
    bytes.try_into().map_err(|_| CryptoError("an SM4 key is 16 bytes (or 32 hex digits)".into()))
}

/// Signs `message` with an SM2 private key (32 bytes, hex), `user_id` as the distinguishing id.
pub fn sm2_sign(
    private_key_hex: &str,
    user_id: &str,
    message: &[u8],
) -> Result<String, CryptoError> {
    let secret =
        hex::decode(private_key_hex).map_err(|e| CryptoError(format!("private key: {e}")))?;
    let secret = sm2::SecretKey::from_slice(&secret)
        .map_err(|_| CryptoError("not an SM2 private key".into()))?;
    let signing = sm2::dsa::SigningKey::new(user_id, &secret)
        .map_err(|_| CryptoError("cannot sign with this key and user id".into()))?;
    let signature: sm2::dsa::Signature = signing.sign(message);
    Ok(BASE64.encode(signature.to_bytes()))
}

/// The public key (uncompressed SEC1, hex) of an SM2 private key (hex).
pub fn sm2_public_key(private_key_hex: &str) -> Result<String, CryptoError> {
    let secret =
        hex::decode(private_key_hex).map_err(|e| CryptoError(format!("private key: {e}")))?;
    let secret = sm2::SecretKey::from_slice(&secret)
        .map_err(|_| CryptoError("not an SM2 private key".into()))?;
    Ok(hex::encode(secret.public_key().to_sec1_bytes()))
}

/// Verifies a Base64 raw `r‖s` signature over `message`.
pub fn sm2_verify(
    public_key_hex: &str,
    user_id: &str,
    message: &[u8],
    signature: &str,
) -> Result<(), CryptoError> {
    let public =
        hex::decode(public_key_hex).map_err(|e| CryptoError(format!("public key: {e}")))?;
    let public = sm2::PublicKey::from_sec1_bytes(&public)
        .map_err(|_| CryptoError("not an SM2 public key".into()))?;
    let verifying = sm2::dsa::VerifyingKey::new(user_id, public)
        .map_err(|_| CryptoError("cannot verify with this key and user id".into()))?;
    let bytes =
        BASE64.decode(signature.trim()).map_err(|_| CryptoError("cainfo is not Base64".into()))?;
    let signature = sm2::dsa::Signature::from_slice(&bytes)
        .map_err(|_| CryptoError("cainfo is not a 64-byte SM2 signature".into()))?;
    verifying
        .verify(message, &signature)
        .map_err(|_| CryptoError("签名验证失败 the cainfo signature does not verify".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jilin_capture_decrypts() {
        // The encrypted response in ../shared/spec/response_encrypted_sm4_jilin.json, with the key
        // its public client uses: SM4-ECB-PKCS#7, key = 16 ASCII bytes of the client id.
        let key = sm4_key("ACC10563D7382BF6").expect("key");
        let plain = sm4_decrypt(&key, "PznBlnVSzpDlyl54Vk3/hg==").expect("decrypts");
        assert_eq!(plain, br#"{"result":null}"#);
        assert_eq!(sm4_encrypt(&key, &plain), "PznBlnVSzpDlyl54Vk3/hg==");
    }

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let private = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
        let public = sm2_public_key(private).expect("public key");
        let signature = sm2_sign(private, "H11010500001", b"{\"data\":1}").expect("signs");
        assert_eq!(sm2_verify(&public, "H11010500001", b"{\"data\":1}", &signature), Ok(()));
        assert!(sm2_verify(&public, "H11010500001", b"{\"data\":2}", &signature).is_err());
        assert!(sm2_verify(&public, "H99999999999", b"{\"data\":1}", &signature).is_err());
    }
}
