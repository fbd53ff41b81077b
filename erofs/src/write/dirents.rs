//! Directory contents as written: the tree's sorted entries merged with `.`, `..` and (V1 root
//! only) the 256 whiteout stubs, in plain byte order, without building a list per directory.
//! Also the split into 4096-byte blocks plus an inline tail (§4.2), shared by V1 and V2.

#![forbid(unsafe_code)]

use crate::format::{BLOCK_SIZE, DIRENT_SIZE};
use crate::tree::DirEntry;

/// Names `00` … `ff` of the whiteout stubs.
pub(crate) static STUB_NAMES: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// What a written directory entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry<'t> {
    /// An entry of the tree.
    Tree(&'t DirEntry),
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// Whiteout stub number `k` (name [`STUB_NAMES`]`[k]`).
    Stub(u8),
}

/// Merges the three sorted sources of a directory's entries.
pub(crate) struct DirIter<'t, 's> {
    tree: std::slice::Iter<'t, DirEntry>,
    peek: Option<&'t DirEntry>,
    dots: u8,
    /// Which stub numbers to add; `None` for every directory but the V1 root.
    stubs: Option<&'s [bool; 256]>,
    stub_pos: usize,
}

impl<'t, 's> DirIter<'t, 's> {
    pub fn new(entries: &'t [DirEntry], stubs: Option<&'s [bool; 256]>) -> Self {
        let mut tree = entries.iter();
        let peek = tree.next();
        let mut it = DirIter {
            tree,
            peek,
            dots: 0,
            stubs,
            stub_pos: 0,
        };
        it.skip_absent_stubs();
        it
    }

    fn skip_absent_stubs(&mut self) {
        if let Some(s) = self.stubs {
            while self.stub_pos < 256 && !s[self.stub_pos] {
                self.stub_pos += 1;
            }
        }
    }

    fn dot_name(&self) -> Option<&'static [u8]> {
        match self.dots {
            0 => Some(b"."),
            1 => Some(b".."),
            _ => None,
        }
    }

    fn stub_name(&self) -> Option<&'static [u8]> {
        match self.stubs {
            Some(_) if self.stub_pos < 256 => Some(&STUB_NAMES[self.stub_pos]),
            _ => None,
        }
    }
}

impl<'t> Iterator for DirIter<'t, '_> {
    type Item = (&'t [u8], Entry<'t>);

    fn next(&mut self) -> Option<Self::Item> {
        // Pick the smallest head among the three sources; names are unique across them.
        let tree = self.peek.map(|e| &*e.name);
        let dot = self.dot_name();
        let stub = self.stub_name();
        let mut best: Option<(&[u8], u8)> = None;
        for (cand, src) in [(tree, 0u8), (dot, 1), (stub, 2)] {
            if let Some(c) = cand {
                if best.is_none_or(|(b, _)| c < b) {
                    best = Some((c, src));
                }
            }
        }
        match best?.1 {
            0 => {
                let e = self.peek.take()?;
                self.peek = self.tree.next();
                Some((&e.name, Entry::Tree(e)))
            }
            1 => {
                let name = dot?;
                self.dots += 1;
                Some((
                    name,
                    if name.len() == 1 {
                        Entry::Dot
                    } else {
                        Entry::DotDot
                    },
                ))
            }
            _ => {
                let k = self.stub_pos as u8;
                self.stub_pos += 1;
                self.skip_absent_stubs();
                Some((&STUB_NAMES[k as usize], Entry::Stub(k)))
            }
        }
    }
}

/// Whole blocks and inline tail bytes of a directory whose entry names have the given lengths.
/// A block holds as many entries as fit in 4096 bytes; a remainder over half a block becomes a
/// block too.
pub(crate) fn dir_size(name_lens: impl Iterator<Item = usize>) -> (u32, u32) {
    let mut n_blocks = 0u32;
    let mut used = 0u64;
    for len in name_lens {
        let l = DIRENT_SIZE + len as u64;
        if used + l > BLOCK_SIZE {
            n_blocks += 1;
            used = 0;
        }
        used += l;
    }
    if used > BLOCK_SIZE / 2 {
        n_blocks += 1;
        used = 0;
    }
    (n_blocks, used as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::InodeId;

    fn entry(name: &[u8]) -> DirEntry {
        DirEntry {
            name: name.into(),
            inode: InodeId(1),
            link: false,
        }
    }

    fn names(it: DirIter<'_, '_>) -> Vec<Vec<u8>> {
        it.map(|(n, _)| n.to_vec()).collect()
    }

    #[test]
    fn dots_sort_among_entries() {
        let es = [
            entry(b"+a"),
            entry(b"-"),
            entry(b".-"),
            entry(b"..."),
            entry(b"a"),
        ];
        assert_eq!(
            names(DirIter::new(&es, None)),
            [&b"+a"[..], b"-", b".", b".-", b"..", b"...", b"a"]
        );
    }

    #[test]
    fn stubs_merge_and_skip_existing_names() {
        let es = [entry(b"0"), entry(b"00x"), entry(b"0a"), entry(b"z")];
        let mut present = [true; 256];
        present[0x0a] = false; // "0a" exists in the tree
        let got = names(DirIter::new(&es, Some(&present)));
        assert_eq!(got.len(), 2 + 4 + 255);
        assert_eq!(&got[..6], [&b"."[..], b"..", b"0", b"00", b"00x", b"01"]);
        assert_eq!(got.iter().filter(|n| n.as_slice() == b"0a").count(), 1);
        assert_eq!(got.last().unwrap(), b"z");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, got);
    }

    #[test]
    fn directory_sizes_follow_the_split_rule() {
        // `.` and `..` alone: 13 + 14 bytes inline.
        assert_eq!(dir_size([1, 2].into_iter()), (0, 27));
        // 70 names of 50 bytes plus the dots: 67 entries fill a block (§4.4 example).
        let lens = [1usize, 2].into_iter().chain(std::iter::repeat_n(50, 70));
        assert_eq!(dir_size(lens), (1, 310));
        // The V1 root of an empty tree: 258 entries, 3611 bytes: one block, no tail.
        let lens = [1usize, 2].into_iter().chain(std::iter::repeat_n(2, 256));
        assert_eq!(dir_size(lens), (1, 0));
        // Exactly half a block stays inline.
        assert_eq!(dir_size([2036usize].into_iter()), (0, 2048));
        assert_eq!(dir_size([2037usize].into_iter()), (1, 0));
    }
}
