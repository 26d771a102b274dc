import { CmError, ExitCode } from '@cm/protocol';
import type { VagrantErrorExit } from './machine-readable';

/**
 * cm-vagrant's own exit codes, beyond the shared table (4 covers "vagrant missing" and "provider not
 * usable"). Distinct so a script can tell "add the box" from "look at the machine" from "retry later".
 */
export const VagrantExit = {
  /** the box is not installed for the provider (or Vagrant could not find it) */
  BOX_MISSING: 6,
  /** some machines asked for (ssh-config, hosts) are not running; the running ones were reported */
  NOT_RUNNING: 7,
  /** after `vagrant up` a machine is still not created, shut off or otherwise not running */
  STUCK: 8,
  /** vagrant failed for another reason (its message follows) */
  VAGRANT_FAILED: 9,
} as const;

const ENVIRONMENT_ERRORS = /(ProviderNotUsable|ProviderNotFound|ProviderNotFoundSuggestion|VirtualBoxNotDetected|VirtualBoxInvalidVersion|ProviderChecksumMismatch|LXC::Errors::LxcNotInstalled|LXC::Errors::LxcLinuxRequired|NoDefaultProvider|PluginLoadError)$/;
const BOX_ERRORS = /(BoxNotFound|BoxNotFoundWithProvider|BoxAddNoMatchingProvider|BoxAddNoMatchingVersion|BoxAddShortNotFound|BoxMetadataDownloadError|DownloaderError)$/;

export function exitCodeFor(err: VagrantErrorExit): number {
  if (ENVIRONMENT_ERRORS.test(err.errorClass)) return ExitCode.ENVIRONMENT;
  if (BOX_ERRORS.test(err.errorClass)) return VagrantExit.BOX_MISSING;
  if (/SSHNotReady$/.test(err.errorClass)) return VagrantExit.NOT_RUNNING;
  return VagrantExit.VAGRANT_FAILED;
}

/** Vagrant's paragraph, folded to one line for `cm-vagrant: ...` */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').replace(/\s+/g, ' ').trim();
}

export function vagrantError(command: string, err: VagrantErrorExit): CmError {
  const name = err.errorClass.replace(/^.*::/, '');
  return new CmError(`vagrant ${command} failed (${name}): ${oneLine(err.message)}`, exitCodeFor(err));
}
