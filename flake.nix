# orch as a Nix flake: `nix develop` for a shell with the Rust toolchain, tmux and git;
# `nix build` (or `nix run . -- demo`) for the orch binary.
#
# No flake.lock is committed: this flake was written on a machine without network access,
# so the lock could not be generated. The first `nix develop` / `nix build` writes one
# (pinning nixpkgs); commit it to make later builds reproducible.
{
  description = "orch: run and supervise fleets of AI coding agents in tmux from one TOML config";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        orch = pkgs.rustPlatform.buildRustPackage {
          pname = "orch-fleet";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package.version;
          src = pkgs.lib.cleanSource ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # libgit2 (through git2) is built from its vendored sources; zlib comes from nixpkgs.
          nativeBuildInputs = [ pkgs.pkg-config ];
          buildInputs = [ pkgs.zlib ];
          # The test suite drives real tmux servers and git repositories in temp dirs; the
          # Nix build sandbox has neither a usable tmux socket dir nor a home. Run the tests
          # with `cargo test` in `nix develop` (or ./smoke.sh) instead.
          doCheck = false;
          nativeCheckInputs = [
            pkgs.tmux
            pkgs.git
          ];
          meta = {
            description = "Run and supervise fleets of AI coding agents in tmux";
            license = with pkgs.lib.licenses; [
              mit
              asl20
            ];
            mainProgram = "orch";
          };
        };
        default = orch;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.tmux
            pkgs.git
            pkgs.pkg-config
            pkgs.zlib
          ];
          RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
        };
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.orch}/bin/orch";
        };
      });
    };
}
