// ropescale — extend the context window of RoPE language models.
// Exit codes: 0 success; 1 the configuration has errors; 2 the input cannot be
// read or parsed, or the command line is wrong.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "ropescale/config/error.h"
#include "ropescale/kernels/simd.h"

std::string& ropescale::cli::command_line() {
  static std::string line;
  return line;
}

ropescale::GgufRopeSource& ropescale::cli::gguf_rope_source() {
  static GgufRopeSource source = GgufRopeSource::Agree;
  return source;
}

ropescale::LlamaModel ropescale::cli::load_model(const std::string& path) {
  return ropescale::load_model(path, gguf_rope_source());
}

ropescale::ModelConfig ropescale::cli::load_model_config(const std::string& path) {
  return ropescale::load_model_config(path, gguf_rope_source());
}

int main(int argc, char** argv) {
  CLI::App app{"ropescale — RoPE context extension: scaling math, config checks, exports and plans"};
  app.set_version_flag("--version", std::string("ropescale 0.1.0"));
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::string gguf_rope = "agree";
  app.add_option("--gguf-rope", gguf_rope,
                 "A GGUF written by ropescale carries its rope setting twice (ropescale.rope_parameters and the "
                 "llama.cpp keys). agree: both must give the same rotation, else an error naming both; "
                 "ropescale or llama.cpp: believe that one")
      ->check(CLI::IsMember({"agree", "ropescale", "llama.cpp"}))
      ->capture_default_str()
      ->each([](const std::string& v) { ropescale::cli::gguf_rope_source() = *ropescale::parse_gguf_rope_source(v); });
  std::string simd;
  app.add_option("--simd", simd, fmt::format("Run the kernels on this SIMD target instead of the CPU's best (what an older "
                                       "CPU gets, measured on this one): {}",
                                       fmt::join(ropescale::simd_targets(), ", ")))
      ->check([](const std::string& v) {  // applied as it is checked: the limit holds from here on
        try {
          ropescale::limit_simd(v);
          return std::string();
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
      });
  int exit_code = 0;
  ropescale::cli::add_config_commands(app, exit_code);
  ropescale::cli::add_bench_commands(app, exit_code);
  ropescale::cli::add_model_commands(app, exit_code);
  ropescale::cli::add_eval_commands(app, exit_code);
  ropescale::cli::add_golden_commands(app, exit_code);
  ropescale::cli::add_calibrate_commands(app, exit_code);
  ropescale::cli::add_train_commands(app, exit_code);
  ropescale::cli::add_serve_commands(app, exit_code);
  for (int i = 0; i < argc; ++i) {
    const std::string a = i == 0 ? "ropescale" : argv[i];
    const bool plain = !a.empty() && a.find_first_of(" \t\"'{}$&|;<>*?") == std::string::npos;
    ropescale::cli::command_line() += (i ? " " : "") + (plain ? a : "'" + a + "'");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const ropescale::ConfigError& e) {
    std::fprintf(stderr, "ropescale: error: %s\n", e.what());
    return e.kind() == ropescale::ConfigError::Kind::Unreadable ? 2 : 1;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "ropescale: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ropescale: error: %s\n", e.what());
    return 2;
  }
  return exit_code;
}
