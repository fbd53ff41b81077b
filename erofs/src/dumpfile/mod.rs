//! The composefs dumpfile format (composefs-dump(5)): parsing as C mkcomposefs 1.0.8 does, and
//! writing as C composefs-info 1.0.8 `dump` does.
