//! The Redis Cluster hash slot of a key: CRC16 (XMODEM: polynomial 0x1021, initial 0) of
//! the key, or of its `{hash tag}` when the key holds a non-empty one, modulo 16384.

/// Redis Cluster's number of hash slots.
pub const SLOTS: u16 = 16384;

/// CRC16 table for polynomial 0x1021, built at compile time.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The part of `key` that is hashed: the bytes between the first `{` and the next `}`
/// after it when there are any, else the whole key (Redis's rule).
fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

/// The slot of `prefix + key` for each key, without building the joined keys one by one
/// in the caller (one scratch buffer).
pub fn prefixed_key_slots<K: AsRef<[u8]>>(prefix: &[u8], keys: &[K]) -> Vec<u16> {
    let mut full = Vec::with_capacity(prefix.len() + 64);
    keys.iter()
        .map(|k| {
            full.clear();
            full.extend_from_slice(prefix);
            full.extend_from_slice(k.as_ref());
            key_slot(&full)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // the XMODEM check value, and the example of the Redis Cluster specification
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_as_redis_computes_them() {
        // values from `CLUSTER KEYSLOT` on a Redis 7 server
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
    }

    #[test]
    fn hash_tag_rules() {
        // an empty tag hashes the whole key; only the first `{` counts
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(
            key_slot(b"no close {brace"),
            crc16(b"no close {brace") % SLOTS
        );
    }

    #[test]
    fn prefixed_slots_hash_the_joined_key() {
        let keys: [&[u8]; 3] = [b"a", b"", b"x}y"];
        let got = prefixed_key_slots(b"p:{", &keys);
        let want: Vec<u16> = keys
            .iter()
            .map(|k| key_slot(&[&b"p:{"[..], k].concat()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[2], key_slot(b"x"));
    }
}
