//! Just enough DER to put a PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`
//! (RFC 5958 §2, RFC 8017 Appendix A.1.2), so every signing key is stored in one format.

use ate_core::keys::SecretBytes;

/// `AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }`.
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// `version INTEGER 0`.
const VERSION_0: [u8; 3] = [0x02, 0x01, 0x00];

/// Wraps a DER `RSAPrivateKey` as a PKCS#8 v1 `PrivateKeyInfo`. The inner key is not
/// parsed here; whoever reads the result (ring) validates it.
pub(crate) fn wrap_rsa_pkcs1(pkcs1: &[u8]) -> SecretBytes {
    let octet_string_len = header_len(pkcs1.len()) + pkcs1.len();
    let body_len = VERSION_0.len() + RSA_ALGORITHM_ID.len() + octet_string_len;
    // Sized up front: a reallocation would leave an unzeroized copy of the key behind.
    let mut der = Vec::with_capacity(header_len(body_len) + body_len);
    push_header(&mut der, 0x30, body_len);
    der.extend_from_slice(&VERSION_0);
    der.extend_from_slice(&RSA_ALGORITHM_ID);
    push_header(&mut der, 0x04, pkcs1.len());
    der.extend_from_slice(pkcs1);
    SecretBytes::new(der)
}

/// Bytes taken by a tag and a definite length of `len`.
pub(crate) fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS as usize / 8 - len.leading_zeros() as usize / 8)
    }
}

/// Appends a tag and a DER definite length.
pub(crate) fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8); // < 0x80: fits
    } else {
        let bytes = len.to_be_bytes();
        let skip = len.leading_zeros() as usize / 8;
        out.push(0x80 | (bytes.len() - skip) as u8); // at most 8 length bytes
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_der_lengths() {
        for (len, expected) in [
            (0usize, vec![0x04, 0x00]),
            (0x7f, vec![0x04, 0x7f]),
            (0x80, vec![0x04, 0x81, 0x80]),
            (0xff, vec![0x04, 0x81, 0xff]),
            (0x100, vec![0x04, 0x82, 0x01, 0x00]),
            (0x1_0000, vec![0x04, 0x83, 0x01, 0x00, 0x00]),
        ] {
            let mut out = Vec::new();
            push_header(&mut out, 0x04, len);
            assert_eq!(out, expected, "{len}");
            assert_eq!(header_len(len), expected.len(), "{len}");
        }
    }

    #[test]
    fn jwt_pkcs8_wrapping_has_the_rsa_layout() {
        let wrapped = wrap_rsa_pkcs1(&[0xAA; 300]);
        let der = wrapped.expose_secret();
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x42]); // 3 + 15 + 4 + 300 = 322
        assert_eq!(&der[4..7], &VERSION_0);
        assert_eq!(&der[7..22], &RSA_ALGORITHM_ID);
        assert_eq!(&der[22..26], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der.len(), 326);
    }
}
