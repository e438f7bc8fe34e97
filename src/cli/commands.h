// Subcommands of the `ropescale` program. Each registers itself on the app and
// sets `exit_code` when it runs. Errors propagate as ConfigError (see main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "ropescale/model/llama_model.h"

namespace ropescale::cli {

void add_config_commands(CLI::App& app, int& exit_code);
void add_bench_commands(CLI::App& app, int& exit_code);
void add_model_commands(CLI::App& app, int& exit_code);
void add_eval_commands(CLI::App& app, int& exit_code);
void add_golden_commands(CLI::App& app, int& exit_code);
void add_calibrate_commands(CLI::App& app, int& exit_code);
void add_train_commands(CLI::App& app, int& exit_code);
void add_serve_commands(CLI::App& app, int& exit_code);

// The command line as typed (set by main), recorded in reports.
std::string& command_line();

// The global --gguf-rope choice (set by main): which of a ropescale GGUF's two
// rope records every command believes. Commands load through these two.
GgufRopeSource& gguf_rope_source();
LlamaModel load_model(const std::string& path);
ModelConfig load_model_config(const std::string& path);

}  // namespace ropescale::cli
