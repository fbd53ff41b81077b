//! Kernel command-line arguments naming composefs images.
