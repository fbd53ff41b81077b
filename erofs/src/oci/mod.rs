//! Tar layers and OCI image layouts into a tree; the bootable transform.
