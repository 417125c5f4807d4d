fn main() {
    // Built in issue 3.
    std::process::exit(111);
}
