import { CmError, ExitCode } from '@cm/protocol';

/** The program that tells each provider is installed, in the order Vagrant itself prefers them. */
export const PROVIDER_PROBES: ReadonlyArray<{ provider: string; program: string; hint: string }> = [
  { provider: 'virtualbox', program: 'VBoxManage', hint: 'VirtualBox' },
  { provider: 'libvirt', program: 'virsh', hint: 'libvirt with the vagrant-libvirt plugin' },
  { provider: 'lxc', program: 'lxc-start', hint: 'lxc with the vagrant-lxc plugin' },
];

/**
 * --provider, else the provider the Vagrantfile already uses, else $VAGRANT_DEFAULT_PROVIDER, else the
 * first installed one. `installed` is asked about programs (a PATH lookup).
 */
export function chooseProvider(opts: {
  flag?: string;
  current?: string;
  env: NodeJS.ProcessEnv;
  installed: (program: string) => boolean;
}): string {
  if (opts.flag) return opts.flag;
  if (opts.current) return opts.current;
  const fromEnv = opts.env.VAGRANT_DEFAULT_PROVIDER;
  if (fromEnv) return fromEnv;
  for (const p of PROVIDER_PROBES) if (opts.installed(p.program)) return p.provider;
  throw new CmError(
    `no usable Vagrant provider: install ${PROVIDER_PROBES.map((p) => `${p.hint} (${p.program})`).join(', or ')}, or name one with --provider`,
    ExitCode.ENVIRONMENT,
  );
}
