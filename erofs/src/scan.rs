//! Building a tree from a directory on disk, as C mkcomposefs does.
