//! Miroir request logic, pure and testable without a socket.
