//! The memory backend's glob matcher (`cachette::GlobMatcher`) against Redis' own: random keys stored in a
//! real `redis-server`, random patterns asked with `KEYS`, and every answer compared with what the matcher
//! selects from the same keys. The alphabets are made of the characters the pattern language gives meaning to
//! (`*`, `?`, `[`, `]`, `^`, `-`, `\`) plus bytes above 0x7F, where Redis compares as C's signed `char`.

use bytes::Bytes;
use cachette::fred::clients::Client;
use cachette::fred::interfaces::ClientLike;
use cachette::fred::types::config::Config;
use cachette::fred::types::CustomCommand;
use cachette::GlobMatcher;
use test_support::RedisServer;

const PATTERNS: usize = 12_000;
const KEYS: usize = 400;

/// A small deterministic generator (xorshift64*): the same cases on every run, and no `rand` dependency.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }

    fn text(&mut self, tokens: &[&str], max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len).map(|_| tokens[self.below(tokens.len())]).collect()
    }
}

#[tokio::test]
async fn the_matcher_selects_exactly_what_redis_keys_selects() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let client = Client::new(
        Config::from_url(&server.url()).expect("the test server's URL parses"),
        None,
        None,
        None,
    );
    client.init().await.expect("the test server answers");

    let key_alphabet = b"ab-^]\\[*?\xc3\xa9\x7f\xff";
    // Patterns are text (every caller passes `&str`); "é" and "ÿ" bring bytes 0xC3, 0xA9 and 0xBF.
    let pattern_tokens = [
        "a", "b", "-", "^", "]", "\\", "[", "*", "?", "*", "?", "[", "é", "ÿ", "\u{7f}",
    ];
    let mut cases = Cases(0x5eed_cafe_f00d_1234);
    let mut keys: Vec<Vec<u8>> = (0..KEYS).map(|_| cases.bytes(key_alphabet, 6)).collect();
    // The empty key is a key too.
    keys.push(Vec::new());
    keys.sort();
    keys.dedup();
    for key in &keys {
        let _: () = client
            .custom(
                CustomCommand::new_static("SET", None, false),
                vec![Bytes::from(key.clone()), Bytes::from_static(b"v")],
            )
            .await
            .expect("SET");
    }

    let mut mismatches = Vec::new();
    for _ in 0..PATTERNS {
        let pattern = cases.text(&pattern_tokens, 8);
        let mut from_redis: Vec<Vec<u8>> = client
            .custom::<Vec<Bytes>, _>(
                CustomCommand::new_static("KEYS", None, false),
                vec![Bytes::from(pattern.clone())],
            )
            .await
            .expect("KEYS")
            .into_iter()
            .map(|k| k.to_vec())
            .collect();
        from_redis.sort();
        let matcher = GlobMatcher::new(&pattern);
        let ours: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| matcher.is_match_bytes(k))
            .cloned()
            .collect();
        if ours != from_redis {
            mismatches.push((pattern, ours.len(), from_redis.len()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {PATTERNS} patterns disagree with redis-server, e.g. (pattern, ours, redis): {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}
