//! Empty: this package only holds examples (see the files beside this one).
