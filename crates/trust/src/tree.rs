//! A Merkle tree kept on disk, append-only: one file per level of complete-subtree hashes
//! (`level-00.bin` holds the leaf hashes, `level-01.bin` the hashes of pairs, ...) and
//! `addr.bin`, the log address of every leaf (u64 little-endian), so that a proof costs a few
//! small reads and an event's leaf index is a binary search.
//!
//! The files are derived from the event log and not synced on every append; the owner syncs
//! them before it records a checkpoint, and on open cuts them back to that checkpoint and
//! replays the log from there.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result, TrustError};
use crate::merkle::{self, node_hash, Hash, Nodes};

struct LevelFile {
    file: File,
    path: PathBuf,
    /// Entries (of `width` bytes) in the file.
    len: u64,
}

impl LevelFile {
    fn open(path: PathBuf, width: u64) -> Result<LevelFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let bytes = file.metadata().map_err(io_err(&path))?.len();
        Ok(LevelFile { file, path, len: bytes / width })
    }

    fn truncate(&mut self, len: u64, width: u64) -> Result<()> {
        self.file.set_len(len * width).map_err(io_err(&self.path))?;
        self.len = len;
        Ok(())
    }

    fn read(&self, index: u64, out: &mut [u8]) -> Result<()> {
        let width = out.len() as u64;
        self.file.read_exact_at(out, index * width).map_err(io_err(&self.path))
    }
}

pub struct DiskTree {
    dir: PathBuf,
    levels: Vec<LevelFile>,
    addr: LevelFile,
    size: u64,
}

impl DiskTree {
    /// Opens the tree in `dir` and cuts it back to `size` leaves (the last checkpoint). Fails
    /// with [`TrustError::Corrupt`] when the files hold fewer than that: the caller rebuilds.
    pub fn open(dir: &Path, size: u64) -> Result<DiskTree> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut tree = DiskTree {
            dir: dir.to_path_buf(),
            levels: Vec::new(),
            addr: LevelFile::open(dir.join("addr.bin"), 8)?,
            size,
        };
        let mut level = 0u32;
        loop {
            let path = dir.join(format!("level-{level:02}.bin"));
            let want = size >> level;
            if want == 0 && !path.exists() {
                break;
            }
            let mut file = LevelFile::open(path, 32)?;
            if file.len < want {
                return Err(TrustError::Corrupt {
                    path: file.path.display().to_string(),
                    reason: format!("holds {} hashes, the checkpoint needs {want}", file.len),
                });
            }
            file.truncate(want, 32)?;
            tree.levels.push(file);
            level += 1;
            if want == 0 {
                break;
            }
        }
        if tree.addr.len < size {
            return Err(TrustError::Corrupt {
                path: tree.addr.path.display().to_string(),
                reason: format!("holds {} addresses, the checkpoint needs {size}", tree.addr.len),
            });
        }
        tree.addr.truncate(size, 8)?;
        Ok(tree)
    }

    /// Removes every file of the tree (before a rebuild).
    pub fn remove(dir: &Path) -> Result<()> {
        match fs::remove_dir_all(dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_err(dir)(err)),
            _ => Ok(()),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn level(&mut self, level: usize) -> Result<&mut LevelFile> {
        while self.levels.len() <= level {
            let path = self.dir.join(format!("level-{:02}.bin", self.levels.len()));
            let mut file = LevelFile::open(path, 32)?;
            file.truncate(0, 32)?;
            self.levels.push(file);
        }
        Ok(&mut self.levels[level])
    }

    /// Appends leaves (hash, log address), computing the parents they complete; one write per
    /// level.
    pub fn append(&mut self, leaves: &[(Hash, u64)]) -> Result<()> {
        if leaves.is_empty() {
            return Ok(());
        }
        let mut addr_bytes = Vec::with_capacity(leaves.len() * 8);
        for (_, addr) in leaves {
            addr_bytes.extend_from_slice(&addr.to_le_bytes());
        }
        self.addr.file.write_all_at(&addr_bytes, self.addr.len * 8).map_err(io_err(&self.addr.path))?;
        self.addr.len += leaves.len() as u64;

        let mut current: Vec<Hash> = leaves.iter().map(|(h, _)| *h).collect();
        let mut level = 0usize;
        while !current.is_empty() {
            let file = self.level(level)?;
            let start = file.len;
            let mut bytes = Vec::with_capacity(current.len() * 32);
            for hash in &current {
                bytes.extend_from_slice(hash);
            }
            file.file.write_all_at(&bytes, start * 32).map_err(io_err(&file.path))?;
            file.len += current.len() as u64;
            // Parents completed by this batch: pairs (2i, 2i+1) with 2i+1 in [start, end).
            let end = start + current.len() as u64;
            let first_right = if start % 2 == 1 { start } else { start + 1 };
            let mut parents = Vec::new();
            let mut right = first_right;
            while right < end {
                let left_hash = if right > start {
                    current[(right - 1 - start) as usize]
                } else {
                    let mut buf = [0u8; 32];
                    file.read(right - 1, &mut buf)?;
                    buf
                };
                parents.push(node_hash(&left_hash, &current[(right - start) as usize]));
                right += 2;
            }
            current = parents;
            level += 1;
        }
        self.size += leaves.len() as u64;
        Ok(())
    }

    /// Flushes every file to stable storage (before a checkpoint names this size).
    pub fn sync(&self) -> Result<()> {
        for file in self.levels.iter().chain(std::iter::once(&self.addr)) {
            file.file.sync_data().map_err(io_err(&file.path))?;
        }
        Ok(())
    }

    pub fn leaf(&self, index: u64) -> Result<Hash> {
        let mut buf = [0u8; 32];
        self.levels
            .first()
            .ok_or_else(|| TrustError::Invalid(format!("leaf {index} is outside an empty tree")))?
            .read(index, &mut buf)?;
        Ok(buf)
    }

    pub fn address(&self, index: u64) -> Result<u64> {
        let mut buf = [0u8; 8];
        self.addr.read(index, &mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    /// The leaf index of the record at a log address (addresses ascend with the index).
    pub fn index_of(&self, addr: u64) -> Result<Option<u64>> {
        let (mut lo, mut hi) = (0u64, self.size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let found = self.address(mid)?;
            match found.cmp(&addr) {
                std::cmp::Ordering::Equal => return Ok(Some(mid)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// Runs `f` over a node source reading this tree's files; I/O errors surface as `Err`.
    pub fn with_nodes<T>(&self, f: impl FnOnce(&dyn NodesDyn) -> T) -> Result<T> {
        let reader = FileNodes { tree: self, error: std::cell::RefCell::new(None) };
        let out = f(&reader);
        match reader.error.into_inner() {
            Some(err) => Err(err),
            None => Ok(out),
        }
    }

    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        self.with_nodes(|nodes| merkle::root(&nodes, size))
    }

    pub fn inclusion_path(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        self.check_size(size)?;
        if index >= size {
            return Err(TrustError::Invalid(format!("leaf {index} is outside a tree of {size}")));
        }
        self.with_nodes(|nodes| merkle::inclusion_path(&nodes, index, size))
    }

    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>> {
        self.check_size(second)?;
        if first > second {
            return Err(TrustError::Invalid(format!("tree sizes out of order: {first} > {second}")));
        }
        self.with_nodes(|nodes| merkle::consistency_proof(&nodes, first, second))
    }

    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.size {
            return Err(TrustError::Invalid(format!("the tree has {} leaves, not {size}", self.size)));
        }
        Ok(())
    }
}

/// Object-safe view of [`Nodes`] for [`DiskTree::with_nodes`].
pub trait NodesDyn {
    fn node_dyn(&self, level: u32, index: u64) -> Hash;
}

impl Nodes for &dyn NodesDyn {
    fn node(&self, level: u32, index: u64) -> Hash {
        self.node_dyn(level, index)
    }
}

struct FileNodes<'a> {
    tree: &'a DiskTree,
    error: std::cell::RefCell<Option<TrustError>>,
}

impl NodesDyn for FileNodes<'_> {
    fn node_dyn(&self, level: u32, index: u64) -> Hash {
        let mut buf = [0u8; 32];
        let result = match self.tree.levels.get(level as usize) {
            Some(file) => file.read(index, &mut buf),
            None => Err(TrustError::Invalid(format!("the tree has no level {level}"))),
        };
        if let Err(err) = result {
            self.error.borrow_mut().get_or_insert(err);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, MemoryTree};

    fn leaf(i: u64) -> (Hash, u64) {
        (leaf_hash(&i.to_le_bytes()), i * 10 + 3)
    }

    #[test]
    fn matches_the_memory_tree_across_batches_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = MemoryTree::new();
        let mut tree = DiskTree::open(dir.path(), 0).unwrap();
        let mut next = 0u64;
        for batch in [1u64, 2, 1, 5, 8, 3, 17, 1, 64, 33] {
            let leaves: Vec<_> = (next..next + batch).map(leaf).collect();
            next += batch;
            tree.append(&leaves).unwrap();
            for (h, _) in &leaves {
                memory.push(*h);
            }
            assert_eq!(tree.root(tree.size()).unwrap(), memory.root());
        }
        for size in [1, 2, 7, 64, 100, next] {
            assert_eq!(tree.root(size).unwrap(), merkle::root(&memory, size));
            assert_eq!(tree.inclusion_path(size / 2, size).unwrap(), merkle::inclusion_path(&memory, size / 2, size));
            assert_eq!(
                tree.consistency_proof(size / 3, size).unwrap(),
                merkle::consistency_proof(&memory, size / 3, size)
            );
        }
        assert_eq!(tree.index_of(leaf(77).1).unwrap(), Some(77));
        assert_eq!(tree.index_of(4).unwrap(), None);
        tree.sync().unwrap();
        drop(tree);

        // Reopen at an earlier checkpoint: the tail is cut and can be appended again.
        let mut tree = DiskTree::open(dir.path(), 100).unwrap();
        assert_eq!(tree.size(), 100);
        assert_eq!(tree.root(100).unwrap(), merkle::root(&memory, 100));
        let rest: Vec<_> = (100..next).map(leaf).collect();
        tree.append(&rest).unwrap();
        assert_eq!(tree.root(next).unwrap(), memory.root());
        assert!(tree.root(next + 1).is_err());
        drop(tree);
        assert!(DiskTree::open(dir.path(), next + 1).is_err(), "a checkpoint beyond the files needs a rebuild");
    }
}
