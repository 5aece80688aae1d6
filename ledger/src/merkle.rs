//! Append-only Merkle log over record hashes, shaped exactly like a
//! Certificate Transparency log (RFC 6962 §2.1, restated in RFC 9162 §2.1).
//!
//! # Tree shape
//!
//! For an ordered list of `n` leaves `D[0..n]`:
//!
//! * `MTH({}) = SHA-256("")` (the empty tree),
//! * `MTH({d}) = SHA-256(0x00 || d)` (a leaf, see [`leaf_hash`]),
//! * `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))` where `k` is
//!   the largest power of two strictly smaller than `n` (see [`node_hash`]).
//!
//! The distinct `0x00` / `0x01` prefixes keep a leaf from ever being passed off
//! as an interior node (second-preimage protection). Because the split is
//! always at a power of two, the left child is a *perfect* subtree, and a
//! perfect subtree never changes once its last leaf has been appended. That is
//! what makes the log cheap: [`MerkleLog`] hashes each perfect subtree once,
//! when it becomes complete, and afterwards only looks it up.
//!
//! # Why auditors can use off-the-shelf tooling
//!
//! Hashing, tree shape and proof layout are byte-for-byte those of RFC 6962:
//! inclusion proofs are `PATH(m, D[n])` (§2.1.1) and consistency proofs are
//! `PROOF(m, D[n])` (§2.1.2), both ordered from the leaf side up to the root.
//! [`verify_inclusion`] and [`verify_consistency`] are the iterative
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2. An auditor can therefore
//! check our roots and proofs with any Certificate Transparency verifier
//! (e.g. `transparency-dev/merkle`, `certificate-transparency-go`, Trillian),
//! given the leaf hash (or the record bytes, hashed with [`leaf_hash`]), the
//! tree size and the root. The unit tests pin the implementation to the
//! published RFC 6962 test vectors.
//!
//! A proof only says something about a `(size, root)` pair, so verifiers must
//! take both from the same signed checkpoint: as in CT, a proof for one size
//! can also verify under a different size whose tree has the same shape on the
//! leaf's path, if it is paired with the original root.
//!
//! # Cost (n = leaves in the log, s = size of the tree asked about)
//!
//! | operation                                 | SHA-256 calls                     |
//! |-------------------------------------------|-----------------------------------|
//! | [`MerkleLog::push`]                       | 1 amortised, at most log2 n       |
//! | [`MerkleLog::root`]                       | under log2 n (one per frontier subtree) |
//! | [`MerkleLog::root_at`]                    | under log2 s                      |
//! | [`MerkleLog::inclusion_proof`]            | under log2 s                      |
//! | [`MerkleLog::consistency_proof`]          | under log2 s                      |
//! | [`verify_inclusion`]                      | one per proof element             |
//! | [`verify_consistency`]                    | at most two per proof element     |
//!
//! Everything else is O(log s) array lookups: every perfect subtree a proof
//! needs is cached, and at most one non-perfect range is hashed per call.
//! Memory is about two digests (64 bytes) per leaf: the leaf hashes plus one
//! hash per complete perfect subtree.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Digest = [u8; 32];

/// Domain-separation prefix for leaves (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix for interior nodes (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// Hash of one leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Digest {
    Sha256::new().chain_update([LEAF_PREFIX]).chain_update(data).finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    Sha256::new().chain_update([NODE_PREFIX]).chain_update(left).chain_update(right).finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Digest {
    Sha256::digest(b"").into()
}

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index does not lie inside the tree of the given size.
    IndexOutOfRange { index: u64, size: u64 },
    /// The requested tree size is larger than the log.
    SizeOutOfRange { size: u64, len: u64 },
    /// No consistency proof exists between these sizes: RFC 9162 only defines
    /// them for `0 < old_size <= new_size`.
    BadOldSize { old_size: u64, new_size: u64 },
    /// The proof does not have the number of hashes the sizes and index imply.
    WrongProofLength { expected: usize, got: usize },
    /// The proof is well formed but does not reproduce the expected root(s).
    RootMismatch,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is out of range for tree size {size}")
            }
            Self::SizeOutOfRange { size, len } => {
                write!(f, "tree size {size} exceeds the log length {len}")
            }
            Self::BadOldSize { old_size, new_size } => write!(
                f,
                "cannot prove consistency from tree size {old_size} to {new_size}: \
                 the old size must be non-zero and not larger than the new size"
            ),
            Self::WrongProofLength { expected, got } => {
                write!(f, "proof has {got} hashes but {expected} are required")
            }
            Self::RootMismatch => write!(f, "proof does not reproduce the expected root hash"),
        }
    }
}

impl std::error::Error for ProofError {}

/// Incremental, append-only RFC 6962 Merkle tree over leaf hashes.
#[derive(Debug, Clone)]
pub struct MerkleLog {
    /// `levels[k][i]` is the root of the perfect subtree over leaves
    /// `[i * 2^k, (i + 1) * 2^k)`; `levels[0]` holds the leaf hashes.
    /// Invariant: `levels[k].len() == len >> k` for every stored level, and
    /// `levels[0]` always exists.
    levels: Vec<Vec<Digest>>,
}

impl Default for MerkleLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self { levels: vec![Vec::new()] }
    }

    /// Appends an already computed leaf hash (normally [`leaf_hash`] of the
    /// record bytes).
    pub fn push(&mut self, leaf: Digest) {
        self.levels[0].push(leaf);
        // Like incrementing a binary counter: a level with an even number of
        // nodes has just completed a pair, whose parent is a new perfect
        // subtree one level up. Amortised, this is one hash per push.
        let mut level = 0;
        while self.levels[level].len() % 2 == 0 {
            let nodes = &self.levels[level];
            let parent = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    /// Number of leaves in the log.
    pub fn len(&self) -> u64 {
        self.leaf_count() as u64
    }

    /// Whether the log has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaf_count() == 0
    }

    /// All leaf hashes, in append order.
    pub fn leaf_hashes(&self) -> &[Digest] {
        &self.levels[0]
    }

    /// Root of the whole log.
    pub fn root(&self) -> Digest {
        // The whole tree is one aligned range, whose decomposition into
        // perfect subtrees is exactly the frontier (compact range).
        self.range_root(0, self.leaf_count())
    }

    /// Root of the tree made of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Digest, ProofError> {
        let size = self.check_size(size)?;
        Ok(self.range_root(0, size))
    }

    /// Audit path `PATH(index, D[0:size])` of RFC 6962 §2.1.1, ordered from the
    /// leaf's sibling up to the child of the root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>, ProofError> {
        self.check_size(size)?;
        let mut lookup = |level, start| Ok::<_, std::convert::Infallible>(self.perfect_root(level, start));
        match inclusion_path(&mut lookup, index, size) {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }

    /// Consistency proof `PROOF(old_size, D[0:new_size])` of RFC 6962 §2.1.2.
    ///
    /// Equal sizes give an empty proof (RFC 9162 §2.1.4); an `old_size` of
    /// zero or larger than `new_size` has no proof.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Digest>, ProofError> {
        self.check_size(new_size)?;
        let mut lookup = |level, start| Ok::<_, std::convert::Infallible>(self.perfect_root(level, start));
        match consistency_path(&mut lookup, old_size, new_size) {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }

    fn leaf_count(&self) -> usize {
        self.levels[0].len()
    }

    fn check_size(&self, size: u64) -> Result<usize, ProofError> {
        let len = self.leaf_count();
        match usize::try_from(size) {
            Ok(s) if s <= len => Ok(s),
            _ => Err(ProofError::SizeOutOfRange { size, len: len as u64 }),
        }
    }

    /// Root of the complete subtree of `2^level` leaves starting at `start`.
    fn perfect_root(&self, level: u32, start: u64) -> Digest {
        debug_assert_eq!(start % (1 << level), 0, "perfect subtree must be aligned");
        self.levels[level as usize][(start >> level) as usize]
    }

    fn range_root(&self, start: usize, size: usize) -> Digest {
        let mut lookup = |level, start| Ok::<_, std::convert::Infallible>(self.perfect_root(level, start));
        match range_root(&mut lookup, start as u64, size as u64) {
            Ok(root) => root,
            Err(never) => match never {},
        }
    }
}

/// Where the proofs read the tree: `perfect(level, start)` is the root of the perfect
/// subtree of `2^level` leaves starting at leaf `start` (a multiple of `2^level`), which
/// the caller guarantees lies inside the tree. [`MerkleLog`] answers from memory, the store
/// from its node file ([`crate::store::tree`]); both give the same proofs, byte for byte.
pub trait PerfectRoots<E>: FnMut(u32, u64) -> Result<Digest, E> {}
impl<E, F: FnMut(u32, u64) -> Result<Digest, E>> PerfectRoots<E> for F {}

/// `MTH(D[start:start+size])` for a range whose start is aligned to
/// `size.next_power_of_two()` (every range the RFC recursion visits is), from at most
/// `popcount(size)` perfect subtree roots.
pub fn range_root<E>(perfect: &mut impl PerfectRoots<E>, start: u64, size: u64) -> Result<Digest, E> {
    debug_assert_eq!(start % size.next_power_of_two().max(1), 0);
    // The RFC tree over such a range is the right-leaning combination of
    // the perfect subtrees given by the binary digits of `size`, largest
    // (leftmost) first, so fold them from the smallest (rightmost) one.
    let mut end = start + size;
    let mut rest = size;
    let mut acc: Option<Digest> = None;
    while rest != 0 {
        let level = rest.trailing_zeros();
        end -= 1 << level;
        let subtree = perfect(level, end)?;
        acc = Some(match acc {
            None => subtree,
            Some(right) => node_hash(&subtree, &right),
        });
        rest &= rest - 1;
    }
    Ok(acc.unwrap_or_else(empty_root))
}

/// Audit path `PATH(index, D[0:size])` of RFC 6962 §2.1.1 over a tree of at least `size`
/// leaves, from O(log size) perfect subtree roots: once the walk goes down a left (perfect)
/// child every sibling is perfect, so at most one sibling is a non-perfect range.
pub fn inclusion_path<E>(
    perfect: &mut impl PerfectRoots<E>,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Digest>, ProofError>, E> {
    if index >= size {
        return Ok(Err(ProofError::IndexOutOfRange { index, size }));
    }
    let mut m = index;
    let (mut start, mut n) = (0, size);
    // Walk down from the root, collecting the sibling of each subtree that
    // contains the leaf; RFC order is bottom-up, hence the final reverse.
    let mut proof = Vec::new();
    while n > 1 {
        let k = split_point(n);
        if m < k {
            proof.push(range_root(perfect, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_root(perfect, start, k)?);
            start += k;
            n -= k;
            m -= k;
        }
    }
    proof.reverse();
    Ok(Ok(proof))
}

/// Consistency proof `PROOF(old_size, D[0:new_size])` of RFC 6962 §2.1.2 over a tree of at
/// least `new_size` leaves, from O(log new_size) perfect subtree roots.
pub fn consistency_path<E>(
    perfect: &mut impl PerfectRoots<E>,
    old_size: u64,
    new_size: u64,
) -> Result<Result<Vec<Digest>, ProofError>, E> {
    if old_size == new_size {
        return Ok(Ok(Vec::new()));
    }
    if old_size == 0 || old_size > new_size {
        return Ok(Err(ProofError::BadOldSize { old_size, new_size }));
    }
    let mut m = old_size;
    let (mut start, mut n) = (0, new_size);
    // Iterative SUBPROOF(m, D[start:start+n], whole_old_tree): descend
    // until the remaining old part is a whole subtree, collecting siblings
    // top-down; RFC order is bottom-up, hence the final reverse.
    let mut whole_old_tree = true;
    let mut proof = Vec::new();
    while m != n {
        let k = split_point(n);
        if m <= k {
            proof.push(range_root(perfect, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_root(perfect, start, k)?);
            start += k;
            n -= k;
            m -= k;
            whole_old_tree = false;
        }
    }
    // The verifier already knows the old root, so it is only sent when
    // the subtree reached is a strict part of the old tree.
    if !whole_old_tree {
        proof.push(range_root(perfect, start, n)?);
    }
    proof.reverse();
    Ok(Ok(proof))
}

/// Largest power of two strictly smaller than `n` (the RFC 6962 `k`); `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// Which side of the running hash a proof element goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The `fn`/`sn` bookkeeping shared by RFC 9162 §2.1.3.2 step 4 and §2.1.4.2
/// step 6: it yields the side of each successive proof element and stops once
/// `sn` reaches 0. Since it never looks at hash values, counting its items
/// gives the exact proof length the RFC algorithm accepts.
#[derive(Debug, Clone)]
struct Walk {
    fn_: u64,
    sn: u64,
}

impl Walk {
    /// RFC 9162 §2.1.3.2 step 2.
    fn for_inclusion(index: u64, size: u64) -> Self {
        debug_assert!(index < size);
        Walk { fn_: index, sn: size - 1 }
    }

    /// RFC 9162 §2.1.4.2 steps 3 and 4; needs `0 < old_size < new_size`.
    fn for_consistency(old_size: u64, new_size: u64) -> Self {
        let mut walk = Walk { fn_: old_size - 1, sn: new_size - 1 };
        while walk.fn_ & 1 == 1 {
            walk.shift();
        }
        walk
    }

    fn shift(&mut self) {
        self.fn_ >>= 1;
        self.sn >>= 1;
    }
}

impl Iterator for Walk {
    type Item = Side;

    fn next(&mut self) -> Option<Side> {
        // "If sn is 0, then stop the iteration and fail": a longer proof is
        // caught by the length check that counts these items.
        if self.sn == 0 {
            return None;
        }
        let side = if self.fn_ & 1 == 1 || self.fn_ == self.sn {
            // "If LSB(fn) is not set, then right-shift both fn and sn equally
            // until either LSB(fn) is set or fn is 0."
            while self.fn_ & 1 == 0 && self.fn_ != 0 {
                self.shift();
            }
            Side::Left
        } else {
            Side::Right
        };
        // "Finally, right-shift both fn and sn one time."
        self.shift();
        Some(side)
    }
}

/// Checks that `proof` has exactly as many elements as `walk` will consume.
fn check_len(walk: &Walk, extra: usize, proof: &[Digest]) -> Result<(), ProofError> {
    let expected = walk.clone().count() + extra;
    if proof.len() == expected {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength { expected, got: proof.len() })
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): that `leaf_hash` is leaf
/// number `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Digest,
    index: u64,
    size: u64,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), ProofError> {
    // Step 1.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Step 2.
    let walk = Walk::for_inclusion(index, size);
    // Step 4a and the "sn is equal to 0" part of step 5, checked up front.
    check_len(&walk, 0, proof)?;
    // Steps 3 and 4.
    let mut r = *leaf_hash;
    for (p, side) in proof.iter().zip(walk) {
        r = match side {
            Side::Left => node_hash(p, &r),
            Side::Right => node_hash(&r, p),
        };
    }
    // Step 5.
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): that the tree of
/// `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root`.
///
/// Equal sizes need an empty proof and equal roots; `old_size == 0` (with a
/// non-empty new tree) or `old_size > new_size` is [`ProofError::BadOldSize`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Digest,
    new_root: &Digest,
    proof: &[Digest],
) -> Result<(), ProofError> {
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength { expected: 0, got: proof.len() });
        }
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadOldSize { old_size, new_size });
    }
    // Steps 3 and 4.
    let walk = Walk::for_consistency(old_size, new_size);
    // Step 2: a power-of-two old tree is a perfect subtree of the new one, so
    // its root is not sent and the verifier starts from the known old root.
    let seeded = old_size.is_power_of_two();
    // Step 1 (empty proof), step 6's "if sn is 0" and step 7's "sn is 0",
    // checked up front; the walk always has at least one step.
    check_len(&walk, usize::from(!seeded), proof)?;
    let (seed, path) = if seeded {
        (old_root, proof)
    } else {
        proof.split_first().ok_or(ProofError::WrongProofLength { expected: 1, got: 0 })?
    };
    // Steps 5 and 6.
    let (mut fr, mut sr) = (*seed, *seed);
    for (c, side) in path.iter().zip(walk) {
        match side {
            Side::Left => {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
            }
            Side::Right => sr = node_hash(&sr, c),
        }
    }
    // Step 7.
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of an append-only tree: the roots of its perfect subtrees, largest first
/// (a "compact range"). Enough to append and to compute the root, in O(log n) memory, which
/// is what a ledger needs to sign checkpoints and a verifier to check them as it streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One root per set bit of `size`, from the most significant bit down.
    nodes: Vec<Digest>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier as stored: `nodes` must hold one root per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Digest>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    pub fn nodes(&self) -> &[Digest] {
        &self.nodes
    }

    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends a leaf hash: merges equal-sized subtrees like a binary counter carries.
    pub fn push(&mut self, leaf: Digest) {
        let mut node = leaf;
        let mut carry = self.size;
        while carry & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            node = node_hash(&left, &node);
            carry >>= 1;
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// `MTH` of the leaves pushed so far: the subtrees folded from the smallest one.
    pub fn root(&self) -> Digest {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else { return empty_root() };
        it.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const VECTORS: &str = include_str!("../tests/data/rfc6962-vectors.json");

    fn digest(hex_str: &str) -> Digest {
        let bytes = hex::decode(hex_str).expect("vector hash is hex");
        bytes.try_into().expect("vector hash is 32 bytes")
    }

    fn digests(value: &serde_json::Value) -> Vec<Digest> {
        value
            .as_array()
            .expect("array of hashes")
            .iter()
            .map(|h| digest(h.as_str().expect("hash is a string")))
            .collect()
    }

    fn field_u64(value: &serde_json::Value, key: &str) -> u64 {
        value[key].as_u64().expect("integer field")
    }

    // ----- Naive RFC 6962 §2.1 reference, written straight from the text. -----

    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[Digest]) -> Digest {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = ref_k(n);
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Digest]) -> Vec<Digest> {
        let n = d.len();
        if n == 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        let (mut path, sibling) =
            if m < k { (ref_path(m, &d[..k]), ref_mth(&d[k..])) } else { (ref_path(m - k, &d[k..]), ref_mth(&d[..k])) };
        path.push(sibling);
        path
    }

    fn ref_subproof(m: usize, d: &[Digest], b: bool) -> Vec<Digest> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        let (mut proof, sibling) = if m <= k {
            (ref_subproof(m, &d[..k], b), ref_mth(&d[k..]))
        } else {
            (ref_subproof(m - k, &d[k..], false), ref_mth(&d[..k]))
        };
        proof.push(sibling);
        proof
    }

    /// xorshift64*: deterministic, dependency-free randomness.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next_u64() % bound
        }

        fn digest(&mut self) -> Digest {
            let mut d = [0u8; 32];
            for chunk in d.chunks_mut(8) {
                chunk.copy_from_slice(&self.next_u64().to_le_bytes());
            }
            d
        }
    }

    /// Seed for the randomized test; `MERKLE_SEED=<n>` explores other trees.
    fn seed() -> u64 {
        std::env::var("MERKLE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1ed9_e500_0001) | 1
    }

    #[test]
    fn hash_primitives_match_rfc() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let (l, r) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut manual = vec![0x01];
        manual.extend_from_slice(&l);
        manual.extend_from_slice(&r);
        assert_eq!(node_hash(&l, &r), <[u8; 32]>::from(Sha256::digest(&manual)));
        assert_eq!(leaf_hash(b"a"), <[u8; 32]>::from(Sha256::digest(b"\x00a")));
    }

    #[test]
    fn reproduces_rfc6962_vectors() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).expect("vectors parse");

        let leaves_hex = v["leaves_hex"].as_array().expect("leaves_hex");
        let expected_leaves = digests(&v["leaf_hashes"]);
        assert_eq!(leaves_hex.len(), expected_leaves.len());
        let leaves: Vec<Digest> =
            leaves_hex.iter().map(|h| leaf_hash(&hex::decode(h.as_str().expect("hex leaf")).expect("hex"))).collect();
        assert_eq!(leaves, expected_leaves, "leaf hashes");

        let roots = digests(&v["roots_by_size"]);
        assert_eq!(roots.len(), leaves.len() + 1);
        let mut log = MerkleLog::new();
        assert_eq!(log.root(), roots[0], "empty root");
        for (i, leaf) in leaves.iter().enumerate() {
            log.push(*leaf);
            assert_eq!(log.root(), roots[i + 1], "root after {} pushes", i + 1);
        }
        for (size, root) in roots.iter().enumerate() {
            assert_eq!(log.root_at(size as u64).as_ref(), Ok(root), "root_at({size})");
        }

        let inclusion = v["inclusion"].as_array().expect("inclusion");
        assert!(!inclusion.is_empty());
        for case in inclusion {
            let (index, size) = (field_u64(case, "leaf_index"), field_u64(case, "tree_size"));
            let expected = digests(&case["proof"]);
            assert_eq!(
                log.inclusion_proof(index, size).as_ref(),
                Ok(&expected),
                "inclusion proof of leaf {index} in tree {size}"
            );
            let root = &roots[size as usize];
            let leaf = &leaves[index as usize];
            assert_eq!(
                verify_inclusion(leaf, index, size, &expected, root),
                Ok(()),
                "vector inclusion proof of leaf {index} in tree {size}"
            );
        }

        let consistency = v["consistency"].as_array().expect("consistency");
        assert!(!consistency.is_empty());
        for case in consistency {
            let (old, new) = (field_u64(case, "old_size"), field_u64(case, "new_size"));
            let expected = digests(&case["proof"]);
            assert_eq!(log.consistency_proof(old, new).as_ref(), Ok(&expected), "consistency proof {old} -> {new}");
            assert_eq!(
                verify_consistency(old, new, &roots[old as usize], &roots[new as usize], &expected),
                Ok(()),
                "vector consistency proof {old} -> {new}"
            );
        }
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let mut log = MerkleLog::new();
        assert!(log.is_empty());
        assert_eq!(log.len(), 0);
        assert_eq!(log.root_at(0), Ok(empty_root()));
        assert_eq!(log.root_at(1), Err(ProofError::SizeOutOfRange { size: 1, len: 0 }));
        assert_eq!(log.inclusion_proof(0, 0), Err(ProofError::IndexOutOfRange { index: 0, size: 0 }));
        assert_eq!(log.consistency_proof(0, 0), Ok(Vec::new()));

        for i in 0..5u8 {
            log.push(leaf_hash(&[i]));
        }
        assert_eq!(log.len(), 5);
        assert_eq!(log.root_at(u64::MAX), Err(ProofError::SizeOutOfRange { size: u64::MAX, len: 5 }));
        assert_eq!(log.inclusion_proof(5, 5), Err(ProofError::IndexOutOfRange { index: 5, size: 5 }));
        assert_eq!(log.inclusion_proof(0, 6), Err(ProofError::SizeOutOfRange { size: 6, len: 5 }));
        assert_eq!(log.consistency_proof(0, 3), Err(ProofError::BadOldSize { old_size: 0, new_size: 3 }));
        assert_eq!(log.consistency_proof(4, 3), Err(ProofError::BadOldSize { old_size: 4, new_size: 3 }));
        assert_eq!(log.consistency_proof(1, 6), Err(ProofError::SizeOutOfRange { size: 6, len: 5 }));

        let root = log.root();
        let leaf = leaf_hash(&[0]);
        assert_eq!(verify_inclusion(&leaf, 0, 0, &[], &root), Err(ProofError::IndexOutOfRange { index: 0, size: 0 }));
        assert_eq!(
            verify_inclusion(&leaf, u64::MAX, u64::MAX, &[], &root),
            Err(ProofError::IndexOutOfRange { index: u64::MAX, size: u64::MAX })
        );
        assert!(verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &[root; 3], &root).is_err());
        assert_eq!(
            verify_consistency(0, 5, &empty_root(), &root, &[]),
            Err(ProofError::BadOldSize { old_size: 0, new_size: 5 })
        );
        assert_eq!(verify_consistency(0, 0, &empty_root(), &empty_root(), &[]), Ok(()));
        assert_eq!(
            verify_consistency(3, 3, &root, &root, &[root]),
            Err(ProofError::WrongProofLength { expected: 0, got: 1 })
        );
        assert_eq!(verify_consistency(3, 3, &root, &leaf, &[]), Err(ProofError::RootMismatch));
        assert!(matches!(
            verify_consistency(3, 5, &root, &root, &[]),
            Err(ProofError::WrongProofLength { got: 0, .. })
        ));
        assert!(matches!(
            verify_consistency(4, 5, &root, &root, &[]),
            Err(ProofError::WrongProofLength { got: 0, .. })
        ));
        assert!(verify_consistency(1, u64::MAX, &root, &root, &[root; 64]).is_err());
        assert_eq!(
            ProofError::WrongProofLength { expected: 3, got: 2 }.to_string(),
            "proof has 2 hashes but 3 are required"
        );
    }

    fn assert_rejected(result: Result<(), ProofError>, ctx: &str, what: &str) {
        assert!(result.is_err(), "{ctx}: accepted a proof with {what}");
    }

    /// The proof with one byte of one element flipped, one element dropped
    /// or one random element added, for every element / position.
    fn corrupted_proofs(rng: &mut Rng, proof: &[Digest]) -> Vec<(Vec<Digest>, String)> {
        let mut out = Vec::new();
        for i in 0..proof.len() {
            let mut bad = proof.to_vec();
            bad[i][rng.below(32) as usize] ^= 1 << rng.below(8);
            out.push((bad, format!("element {i} flipped")));

            let mut bad = proof.to_vec();
            bad.remove(i);
            out.push((bad, format!("element {i} dropped")));
        }
        for at in [0, proof.len()] {
            let mut bad = proof.to_vec();
            bad.insert(at, rng.digest());
            out.push((bad, format!("element added at {at}")));
        }
        out
    }

    fn flip_bit(rng: &mut Rng, digest: &Digest) -> Digest {
        let mut flipped = *digest;
        flipped[rng.below(32) as usize] ^= 1 << rng.below(8);
        flipped
    }

    /// Every way of corrupting an inclusion proof that must be rejected.
    fn assert_inclusion_tampering_rejected(
        log: &MerkleLog,
        rng: &mut Rng,
        (index, size): (u64, u64),
        proof: &[Digest],
        ctx: &str,
    ) {
        let leaves = log.leaf_hashes();
        let leaf = leaves[index as usize];
        let root = log.root_at(size).unwrap();

        for (bad, what) in corrupted_proofs(rng, proof) {
            assert_rejected(verify_inclusion(&leaf, index, size, &bad, &root), ctx, &what);
        }
        let bad_leaf = flip_bit(rng, &leaf);
        let result = verify_inclusion(&bad_leaf, index, size, proof, &root);
        assert_rejected(result, ctx, "tampered leaf");
        let bad_root = flip_bit(rng, &root);
        let result = verify_inclusion(&leaf, index, size, proof, &bad_root);
        assert_rejected(result, ctx, "tampered root");

        if size > 1 {
            let other = (index + 1 + rng.below(size - 1)) % size;
            let result = verify_inclusion(&leaf, other, size, proof, &root);
            assert_rejected(result, ctx, &format!("index {other}"));
            let result = verify_inclusion(&leaves[other as usize], index, size, proof, &root);
            assert_rejected(result, ctx, &format!("leaf {other}"));
        }
        let result = verify_inclusion(&leaf, size, size, proof, &root);
        assert_rejected(result, ctx, "index == size");

        // A different size is only meaningful with that size's root (both come
        // from one signed checkpoint); paired that way it must fail.
        for other in [size - 1, size + 1] {
            if other > index && other <= log.len() {
                let other_root = log.root_at(other).unwrap();
                let result = verify_inclusion(&leaf, index, other, proof, &other_root);
                assert_rejected(result, ctx, &format!("size {other}"));
            }
        }
    }

    /// Every way of corrupting a consistency proof that must be rejected.
    fn assert_consistency_tampering_rejected(
        log: &MerkleLog,
        rng: &mut Rng,
        (old, new): (u64, u64),
        proof: &[Digest],
        ctx: &str,
    ) {
        let old_root = log.root_at(old).unwrap();
        let new_root = log.root_at(new).unwrap();

        for (bad, what) in corrupted_proofs(rng, proof) {
            let result = verify_consistency(old, new, &old_root, &new_root, &bad);
            assert_rejected(result, ctx, &what);
        }
        let bad_old_root = flip_bit(rng, &old_root);
        let result = verify_consistency(old, new, &bad_old_root, &new_root, proof);
        assert_rejected(result, ctx, "tampered old root");
        let bad_new_root = flip_bit(rng, &new_root);
        let result = verify_consistency(old, new, &old_root, &bad_new_root, proof);
        assert_rejected(result, ctx, "tampered new root");
        if old != new {
            let result = verify_consistency(old, new, &new_root, &old_root, proof);
            assert_rejected(result, ctx, "swapped roots");
        }

        // Wrong sizes, each paired with the true root of that size.
        for other in [old - 1, old + 1] {
            if other <= new {
                let other_root = log.root_at(other).unwrap();
                let result = verify_consistency(other, new, &other_root, &new_root, proof);
                assert_rejected(result, ctx, &format!("old size {other}"));
            }
        }
        for other in [new - 1, new + 1] {
            if other >= old && other <= log.len() {
                let other_root = log.root_at(other).unwrap();
                let result = verify_consistency(old, other, &old_root, &other_root, proof);
                assert_rejected(result, ctx, &format!("new size {other}"));
            }
        }
    }

    /// How much of the randomized check to run: everything is quadratic in
    /// the tree size and SHA-256 is slow in unoptimised test builds.
    struct Coverage {
        /// Trees up to this size check every index and every old size.
        all_up_to: usize,
        /// Larger trees check this many indices / old sizes, edges included.
        sample: usize,
        /// Trees up to this size compare proofs with the naive recursion.
        naive_up_to: usize,
        /// Trees up to this size tamper with every proof...
        tamper_all_up_to: usize,
        /// ...larger ones with one proof in this many.
        tamper_one_in: u64,
    }

    /// Indices `0..n` to check: all of them, or the two edges plus random ones.
    fn positions(rng: &mut Rng, n: usize, cov: &Coverage) -> Vec<usize> {
        if n <= cov.all_up_to {
            return (0..n).collect();
        }
        let mut picked = vec![0, n - 1];
        picked.extend((2..cov.sample).map(|_| rng.below(n as u64) as usize));
        picked
    }

    fn check_random_trees(seed: u64, max: usize, cov: &Coverage) {
        let mut rng = Rng(seed);
        let leaves: Vec<Digest> = (0..max).map(|_| leaf_hash(&rng.digest())).collect();
        let mut log = MerkleLog::new();
        for (i, leaf) in leaves.iter().enumerate() {
            log.push(*leaf);
            assert_eq!(log.len(), i as u64 + 1);
            let ctx = format!("seed {seed}: root after {} pushes", i + 1);
            assert_eq!(log.root(), ref_mth(&leaves[..=i]), "{ctx}");
        }

        for n in 1..=max {
            let size = n as u64;
            let root = ref_mth(&leaves[..n]);
            assert_eq!(log.root_at(size), Ok(root), "seed {seed}: root_at({n})");
            let tamper = |rng: &mut Rng| n <= cov.tamper_all_up_to || rng.below(cov.tamper_one_in) == 0;

            for m in positions(&mut rng, n, cov) {
                let ctx = format!("seed {seed}: leaf {m} of tree {n}");
                let proof = log.inclusion_proof(m as u64, size).unwrap();
                if n <= cov.naive_up_to {
                    assert_eq!(proof, ref_path(m, &leaves[..n]), "{ctx}: PATH");
                }
                let result = verify_inclusion(&leaves[m], m as u64, size, &proof, &root);
                assert_eq!(result, Ok(()), "{ctx}");
                if tamper(&mut rng) {
                    let at = (m as u64, size);
                    assert_inclusion_tampering_rejected(&log, &mut rng, at, &proof, &ctx);
                }
            }

            for old in positions(&mut rng, n, cov).into_iter().map(|i| i + 1) {
                let ctx = format!("seed {seed}: consistency {old} -> {n}");
                let proof = log.consistency_proof(old as u64, size).unwrap();
                if n <= cov.naive_up_to {
                    let expected = if old == n { Vec::new() } else { ref_subproof(old, &leaves[..n], true) };
                    assert_eq!(proof, expected, "{ctx}: PROOF");
                }
                let old_root = log.root_at(old as u64).unwrap();
                let result = verify_consistency(old as u64, size, &old_root, &root, &proof);
                assert_eq!(result, Ok(()), "{ctx}");
                if tamper(&mut rng) {
                    let sizes = (old as u64, size);
                    assert_consistency_tampering_rejected(&log, &mut rng, sizes, &proof, &ctx);
                }
            }
        }
    }

    #[test]
    fn frontier_root_equals_the_full_log_at_every_size() {
        let mut log = MerkleLog::new();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for i in 0u32..300 {
            let leaf = leaf_hash(&i.to_be_bytes());
            log.push(leaf);
            frontier.push(leaf);
            assert_eq!(frontier.root(), log.root(), "size {}", i + 1);
            let stored = Frontier::from_parts(frontier.len(), frontier.nodes().to_vec()).expect("well formed");
            assert_eq!(stored, frontier);
        }
        assert!(Frontier::from_parts(3, vec![empty_root()]).is_none(), "3 leaves need two subtree roots");
    }

    #[test]
    fn randomized_against_reference_implementation() {
        let coverage = Coverage { all_up_to: 64, sample: 16, naive_up_to: 32, tamper_all_up_to: 24, tamper_one_in: 8 };
        check_random_trees(seed(), 300, &coverage);
    }

    /// Every index, every old size, every tamper, naive proofs for every tree.
    /// Run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore = "exhaustive version of the randomized test; run in release"]
    fn randomized_exhaustive() {
        let coverage = Coverage {
            all_up_to: usize::MAX,
            sample: 0,
            naive_up_to: usize::MAX,
            tamper_all_up_to: usize::MAX,
            tamper_one_in: 1,
        };
        check_random_trees(seed(), 300, &coverage);
    }

    /// Run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing check on a 1,000,000-leaf log; run in release"]
    fn historic_queries_on_a_million_leaves_are_fast() {
        const N: u64 = 1_000_000;
        const LIMIT: Duration = Duration::from_millis(10);
        let seed = seed();
        let mut rng = Rng(seed);

        let started = Instant::now();
        let mut log = MerkleLog::new();
        for i in 0..N {
            log.push(leaf_hash(&i.to_be_bytes()));
        }
        eprintln!("built {N} leaves in {:?}", started.elapsed());

        let mut worst = [Duration::ZERO; 4];
        for _ in 0..200 {
            let new = 1 + rng.below(N);
            let old = 1 + rng.below(new);
            let index = rng.below(new);

            let t = Instant::now();
            let new_root = log.root_at(new).unwrap();
            worst[0] = worst[0].max(t.elapsed());

            let t = Instant::now();
            let proof = log.inclusion_proof(index, new).unwrap();
            worst[1] = worst[1].max(t.elapsed());
            let leaf = leaf_hash(&index.to_be_bytes());
            verify_inclusion(&leaf, index, new, &proof, &new_root).unwrap();

            let t = Instant::now();
            let proof = log.consistency_proof(old, new).unwrap();
            worst[2] = worst[2].max(t.elapsed());
            let old_root = log.root_at(old).unwrap();
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();

            let t = Instant::now();
            let _ = log.root();
            worst[3] = worst[3].max(t.elapsed());
        }
        let names = ["root_at", "inclusion_proof", "consistency_proof", "root"];
        for (name, time) in names.iter().zip(worst) {
            eprintln!("worst {name}: {time:?}");
            assert!(time < LIMIT, "seed {seed}: {name} took {time:?}");
        }
    }
}
