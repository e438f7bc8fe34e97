// eval ppl | passkey | tasks | suite: perplexity against context length, passkey
// retrieval, the RULER-style tasks, and all of them in one report — several rope
// settings side by side, on the runtime or on any OpenAI-compatible endpoint.
#include "commands.h"
#include "eval_run.h"

namespace ropescale::cli {

void add_eval_commands(CLI::App& app, int& exit_code) {
  auto* ev = app.add_subcommand("eval", "Evaluate rope settings side by side: perplexity against length, passkey "
                                        "retrieval, RULER-style tasks — here or through an endpoint (--endpoint)");
  ev->require_subcommand(1);
  struct Command {
    const char* name;
    const char* help;
    EvalParts parts;
    const char* tasks;  // default --tasks
  };
  const Command commands[] = {
      {"ppl", "Perplexity and NLL by position at several context lengths, for several methods in one run", {true, false, false}, ""},
      {"passkey", "Passkey retrieval over lengths × depths × trials: exact greedy, log-prob rank and needle NLL",
       {false, true, false}, ""},
      {"tasks", "RULER-style retrieval tasks over lengths × depths × trials: score, needle NLL, effective context",
       {false, false, true}, "all"},
      {"suite", "Perplexity, passkey and (with --tasks) the retrieval tasks in one run and one report "
                "(`golden record` stores one to compare against)",
       {true, true, true}, ""},
  };
  for (const Command& cmd : commands) {
    auto o = std::make_shared<EvalOptions>();
    o->tasks = cmd.tasks;
    if (!cmd.parts.ppl) o->lengths = o->ctx;
    auto* c = ev->add_subcommand(cmd.name, cmd.help);
    add_eval_options(c, *o, cmd.parts, cmd.parts.ppl);
    const EvalParts parts = cmd.parts;
    c->callback([o, parts, &exit_code] {
      EvalParts p = parts;
      p.tasks = parts.tasks && !o->tasks.empty();  // suite: tasks only when asked for
      write_evaluation(*o, run_evaluation(*o, p));
      exit_code = 0;
    });
  }
}

}  // namespace ropescale::cli
