// Reading the registration files listed in `app_service_config_files` (the config loader calls
// it; a problem in any file stops start-up with every problem listed, each naming file and key).
import { readFileSync } from "node:fs";
import { checkRegistrationSet, parseRegistration, type AppserviceRegistration } from "./registration.js";

export class RegistrationError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("; "));
    this.name = "RegistrationError";
  }
}

/** Throws RegistrationError listing every problem of every file. */
export function loadRegistrationFiles(paths: readonly string[]): AppserviceRegistration[] {
  const problems: string[] = [];
  const registrations: AppserviceRegistration[] = [];
  const sources: string[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      problems.push(`${path}: cannot read the registration file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      continue;
    }
    const verdict = parseRegistration(text, path);
    if (!verdict.ok) problems.push(...verdict.problems);
    else {
      registrations.push(verdict.registration);
      sources.push(path);
    }
  }
  problems.push(...checkRegistrationSet(registrations, sources));
  if (problems.length > 0) throw new RegistrationError(problems);
  return registrations;
}
