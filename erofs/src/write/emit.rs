//! The emission phase: streams a [`Plan`] to a `Write` in file order — header, superblock,
//! inodes with their xattrs and tails, the shared xattr table, then the data blocks. Nothing
//! is buffered beyond a small write buffer, so an image never has to fit in memory.

#![forbid(unsafe_code)]

use std::io::{self, BufWriter, Write};

use zerocopy::IntoBytes;

use crate::format::{
    CompactInode, ComposefsHeader, DataLayout, Dirent, ExtendedInode, Superblock, XattrHeader,
    BLOCK_BITS, BLOCK_SIZE, COMPOSEFS_FEATURE_COMPAT, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC,
    DIRENT_SIZE, EROFS_MAGIC, SLOT_SIZE, SUPERBLOCK_OFFSET, XATTR_HEADER_SIZE,
};
use crate::tree::{Directory, FileType};

use super::dirents::Entry;
use super::plan::{Data, Plan};
use super::xattrs::{split_prefix, write_entry};
use super::WriteError;

/// A buffered writer that knows its offset.
struct Out<W: Write> {
    w: BufWriter<W>,
    pos: u64,
}

static ZEROS: [u8; 4096] = [0; 4096];
static FF: [u8; 4096] = [0xFF; 4096];

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.w.write_all(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl<W: Write> Out<W> {
    fn fill(&mut self, byte_src: &'static [u8; 4096], mut n: u64) -> io::Result<()> {
        while n > 0 {
            let k = n.min(4096) as usize;
            self.write_all(&byte_src[..k])?;
            n -= k as u64;
        }
        Ok(())
    }
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        self.fill(&ZEROS, n)
    }
    fn align(&mut self, to: u64) -> io::Result<()> {
        let n = crate::format::round_up(self.pos, to) - self.pos;
        self.zeros(n)
    }
}

/// Writes the image; returns its length in bytes.
pub(crate) fn emit(plan: &Plan<'_>, out: impl Write) -> Result<u64, WriteError> {
    let mut o = Out {
        w: BufWriter::with_capacity(1 << 16, out),
        pos: 0,
    };
    write_head(plan, &mut o)?;
    for i in 0..plan.nodes.len() {
        write_inode(plan, &mut o, i)?;
    }
    o.align(SLOT_SIZE)?;
    debug_assert_eq!(o.pos, plan.inodes_end);
    let res = plan.resolver();
    for &id in &plan.shared {
        let p = &plan.pairs.pairs[id as usize];
        let (index, suffix) = split_prefix(res.name(p.xref), res.prefixes);
        write_entry(&mut o, index, suffix, res.value(p.xref))?;
    }
    o.align(BLOCK_SIZE)?;
    debug_assert_eq!(o.pos, plan.data_start);
    for i in 0..plan.nodes.len() {
        write_blocks(plan, &mut o, i)?;
    }
    debug_assert_eq!(
        o.pos,
        plan.data_start + plan.n_data_blocks * BLOCK_SIZE,
        "data blocks"
    );
    o.flush()?;
    Ok(o.pos)
}

fn write_head<W: Write>(plan: &Plan<'_>, o: &mut Out<W>) -> Result<(), WriteError> {
    let policy = &plan.policy;
    let header = ComposefsHeader {
        magic: COMPOSEFS_MAGIC.into(),
        version: COMPOSEFS_HEADER_VERSION.into(),
        flags: policy.header_flags(plan.has_acl).into(),
        composefs_version: policy.composefs_version.into(),
        unused: Default::default(),
    };
    o.write_all(header.as_bytes())?;
    o.zeros(SUPERBLOCK_OFFSET - o.pos)?;
    let build = policy.build_time(plan.min_mtime);
    let blocks = plan.data_start / BLOCK_SIZE + plan.n_data_blocks;
    let sb = Superblock {
        magic: EROFS_MAGIC.into(),
        feature_compat: COMPOSEFS_FEATURE_COMPAT.into(),
        blkszbits: BLOCK_BITS,
        root_nid: (plan.nodes[0].nid as u16).into(),
        inos: (plan.nodes.len() as u64).into(),
        build_time: (build.sec as u64).into(),
        build_time_nsec: build.nsec.into(),
        blocks: u32::try_from(blocks)
            .map_err(|_| WriteError::ImageTooLarge)?
            .into(),
        meta_blkaddr: 0.into(),
        xattr_blkaddr: policy.xattr_blkaddr(plan.inodes_end).into(),
        ..Default::default()
    };
    o.write_all(sb.as_bytes())?;
    Ok(())
}

fn write_inode<W: Write>(plan: &Plan<'_>, o: &mut Out<W>, i: usize) -> Result<(), WriteError> {
    let node = &plan.nodes[i];
    let policy = &plan.policy;
    debug_assert!(o.pos <= node.nid * SLOT_SIZE, "inode {i} position");
    o.zeros(node.nid * SLOT_SIZE - o.pos)?;
    let meta = plan.meta(i);
    let (n_shared, x) = plan.xattr_area(i);
    let icount = if x == 0 {
        0
    } else {
        (x - XATTR_HEADER_SIZE) / 4 + 1
    };
    let icount =
        u16::try_from(icount).map_err(|_| WriteError::TooManyXattrs { path: plan.path(i) })?;

    let block_addr = || (plan.data_start / BLOCK_SIZE) as u32 + node.first_block;
    let mut layout = if node.tail > 0 {
        DataLayout::FlatInline
    } else {
        DataLayout::FlatPlain
    };
    let mut u = 0u32;
    let mut nlink = meta.nlink;
    let size = match meta.data {
        Data::Dir(d) => {
            nlink = plan.dir_nlink(d);
            if node.n_blocks > 0 {
                u = block_addr();
            }
            u64::from(node.n_blocks) * BLOCK_SIZE + u64::from(node.tail)
        }
        Data::External { size, has_digest } => {
            layout = DataLayout::ChunkBased;
            if node.n_blocks > 0 {
                u = block_addr() & 0xFFFF_0000;
            }
            u |= u32::from(policy.chunking(size, has_digest).0);
            size
        }
        Data::Inline(_) | Data::Symlink(_) => {
            if node.n_blocks > 0 {
                u = block_addr();
            }
            meta.st_size
        }
        Data::None => {
            if matches!(meta.ftype, FileType::CharDevice | FileType::BlockDevice) {
                u = meta.rdev;
            }
            0
        }
    };
    let ino = policy.ino(i as u32, node.nid);
    if node.compact {
        let inode = CompactInode {
            format: layout.i_format(false).into(),
            xattr_icount: icount.into(),
            mode: meta.mode().into(),
            nlink: (nlink as u16).into(),
            size: (size as u32).into(),
            reserved: 0.into(),
            u: u.into(),
            ino: ino.into(),
            uid: (meta.uid as u16).into(),
            gid: (meta.gid as u16).into(),
            reserved2: 0.into(),
        };
        o.write_all(inode.as_bytes())?;
    } else {
        let inode = ExtendedInode {
            format: layout.i_format(true).into(),
            xattr_icount: icount.into(),
            mode: meta.mode().into(),
            reserved: 0.into(),
            size: size.into(),
            u: u.into(),
            ino: ino.into(),
            uid: meta.uid.into(),
            gid: meta.gid.into(),
            mtime: (meta.mtime.sec as u64).into(),
            mtime_nsec: policy.mtime_nsec(meta.mtime).into(),
            nlink: nlink.into(),
            reserved2: [0; 16],
        };
        o.write_all(inode.as_bytes())?;
    }

    if x > 0 {
        write_xattr_area(plan, o, i, n_shared)?;
    }

    match meta.data {
        Data::Dir(d) if node.tail > 0 => write_dir(plan, o, i, d, false)?,
        Data::Symlink(t) if node.tail > 0 => o.write_all(t)?,
        Data::Inline(c) if node.tail > 0 => o.write_all(&c[c.len() - node.tail as usize..])?,
        Data::External { .. } if node.tail > 0 => o.fill(&FF, u64::from(node.tail))?,
        _ => {}
    }
    Ok(())
}

fn write_xattr_area<W: Write>(
    plan: &Plan<'_>,
    o: &mut Out<W>,
    i: usize,
    n_shared: usize,
) -> Result<(), WriteError> {
    let ids = plan.xattrs_of(i);
    let pairs = &plan.pairs.pairs;
    let bits = ids
        .iter()
        .fold(0u32, |acc, &id| acc | 1 << pairs[id as usize].filter_bit());
    let h = XattrHeader {
        name_filter: (!bits).into(),
        shared_count: n_shared as u8,
        reserved: [0; 7],
    };
    o.write_all(h.as_bytes())?;
    let mut k = 0;
    for &id in ids {
        if plan.is_shared(id, k) {
            k += 1;
            let r = plan.policy.shared_ref(
                plan.inodes_end,
                u64::from(pairs[id as usize].shared_offset()),
            );
            o.write_all(&r.to_le_bytes())?;
        }
    }
    let res = plan.resolver();
    let mut k = 0;
    for &id in ids {
        if plan.is_shared(id, k) {
            k += 1;
            continue;
        }
        let p = &pairs[id as usize];
        let (index, suffix) = split_prefix(res.name(p.xref), res.prefixes);
        write_entry(o, index, suffix, res.value(p.xref))?;
    }
    Ok(())
}

/// Writes a directory's full blocks (`blocks`) or its inline tail (`!blocks`).
fn write_dir<W: Write>(
    plan: &Plan<'_>,
    o: &mut Out<W>,
    i: usize,
    d: &Directory,
    blocks: bool,
) -> Result<(), WriteError> {
    let n_blocks = plan.nodes[i].n_blocks;
    let mut chunk: Vec<(&[u8], Entry<'_>)> = Vec::new();
    let mut used = 0u64;
    let mut written = 0u32;
    for (name, e) in plan.dir_entries(i, d) {
        let l = DIRENT_SIZE + name.len() as u64;
        if used + l > BLOCK_SIZE {
            if blocks {
                write_chunk(plan, o, i, &chunk, true)?;
            }
            written += 1;
            chunk.clear();
            used = 0;
        }
        chunk.push((name, e));
        used += l;
    }
    if written < n_blocks {
        if blocks {
            write_chunk(plan, o, i, &chunk, true)?;
        }
        chunk.clear();
    }
    if !blocks && !chunk.is_empty() {
        write_chunk(plan, o, i, &chunk, false)?;
    }
    Ok(())
}

/// One directory chunk: all dirents, then all names; a block is zero-padded to 4096.
fn write_chunk<W: Write>(
    plan: &Plan<'_>,
    o: &mut Out<W>,
    i: usize,
    chunk: &[(&[u8], Entry<'_>)],
    block: bool,
) -> Result<(), WriteError> {
    let start = o.pos;
    let mut nameoff = chunk.len() as u64 * DIRENT_SIZE;
    for &(name, e) in chunk {
        let t = plan.entry_target(i, e)?;
        let de = Dirent {
            nid: plan.nodes[t].nid.into(),
            nameoff: (nameoff as u16).into(),
            file_type: crate::format::dirent_type(plan.meta(t).ftype),
            reserved: 0,
        };
        o.write_all(de.as_bytes())?;
        nameoff += name.len() as u64;
    }
    for &(name, _) in chunk {
        o.write_all(name)?;
    }
    if block {
        o.zeros(BLOCK_SIZE - (o.pos - start))?;
    }
    Ok(())
}

/// Data blocks of inode `i`, each zero-padded to 4096 bytes.
fn write_blocks<W: Write>(plan: &Plan<'_>, o: &mut Out<W>, i: usize) -> Result<(), WriteError> {
    let node = &plan.nodes[i];
    if node.n_blocks == 0 {
        return Ok(());
    }
    let meta = plan.meta(i);
    let bytes: &[u8] = match meta.data {
        Data::Dir(d) => return write_dir(plan, o, i, d, true),
        Data::External { .. } => {
            // A chunk table that did not fit inline: a block of holes.
            return Ok(o.fill(&FF, u64::from(node.n_blocks) * BLOCK_SIZE)?);
        }
        Data::Inline(c) => c,
        Data::Symlink(t) => t,
        Data::None => &[],
    };
    for b in 0..node.n_blocks as usize {
        let start = (b * BLOCK_SIZE as usize).min(bytes.len());
        let end = ((b + 1) * BLOCK_SIZE as usize).min(bytes.len());
        o.write_all(&bytes[start..end])?;
        o.zeros(BLOCK_SIZE - (end - start) as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types() {
        assert_eq!(crate::format::dirent_type(FileType::Symlink), 7);
        assert_eq!(crate::format::dirent_type(FileType::Directory), 2);
        assert_eq!(crate::format::dirent_type(FileType::Regular), 1);
    }
}
