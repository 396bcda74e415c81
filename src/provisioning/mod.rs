pub mod setupbin;
