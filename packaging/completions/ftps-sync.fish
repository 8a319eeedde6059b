# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ftps_sync_global_optspecs
    string join \n c/config= v/verbose q/quiet log-level= log-file= h/help V/version
end

function __fish_ftps_sync_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ftps_sync_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ftps_sync_using_subcommand
    set -l cmd (__fish_ftps_sync_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -s V -l version -d 'Print version'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "sync" -d 'One pass per folder, then exit'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "run" -d 'Run as a service: a pass, then watch and poll'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "check" -d 'Check the config, connect, and report TLS and server features'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "status" -d 'What the state store knows about each folder'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "service" -d 'Install, remove or inspect the system service (systemd on Linux, the Service Control Manager on Windows)'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "demo" -d 'Start an embedded FTPS server on loopback and sync sample folders with it'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "completions" -d 'Print a shell completion script, e.g. `ftps-sync completions bash > /etc/bash_completion.d/ftps-sync`'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "man" -d 'Print the manual page (roff), e.g. `ftps-sync man | man -l -`'
complete -c ftps-sync -n "__fish_ftps_sync_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l folder -d 'Only this folder (repeatable)' -r
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l exclude -d 'Skip paths matching this pattern, as if added to each folder\'s `ignore` (repeatable). Files it hides are not deleted on the other side' -r
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l bwlimit -d 'Bandwidth limit across all transfers, e.g. 10MiB/s (overrides bandwidth_limit)' -r
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l max-delete -d 'Let the pass delete up to N files or N% of the files in sync (overrides max_delete_percent)' -r
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s n -l dry-run -d 'Print the plan and change nothing'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l json -d 'Print the reports as JSON on stdout'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s P -l progress -d 'Show progress even when stderr is not a terminal'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -l no-progress -d 'Never show progress'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand sync" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand run" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -l trust -d 'Show the server\'s certificate and pin it in the config (trust on first use)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -l yes -d 'With --trust: pin without asking (for scripts)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -l force -d 'With --trust: pin even a certificate the system already trusts'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand check" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -l json -d 'Print it as JSON on stdout'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -l remote -d 'Also connect and list the server: what the next pass would do, both ways (read-only; works while `run` is running)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -l conflicts -d 'List each conflict copy beside the file it is a version of'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand status" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -f -a "install" -d 'Install `run` with this config as a service, enable and start it'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -f -a "uninstall" -d 'Stop and remove the service; the config, state and folders stay'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -f -a "status" -d 'Whether the service is installed and running, with which config, and its last passes'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -f -a "run" -d 'What the Windows Service Control Manager starts; not for use in a console'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and not __fish_seen_subcommand_from install uninstall status run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -l user -d 'The account the service runs as (Linux; created if it is the default and missing)' -r
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -l root -d 'Write the files under this directory instead of `/`, and start nothing (Linux; for packaging and tests)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -l root -d 'The staging directory given to `install --root` (Linux)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from uninstall" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -l root -d 'The staging directory given to `install --root` (Linux)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install `run` with this config as a service, enable and start it'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from help" -f -a "uninstall" -d 'Stop and remove the service; the config, state and folders stay'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from help" -f -a "status" -d 'Whether the service is installed and running, with which config, and its last passes'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from help" -f -a "run" -d 'What the Windows Service Control Manager starts; not for use in a console'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand service; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand demo" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -s c -l config -d 'Config file [default: $FTPS_SYNC_CONFIG, ./ftps-sync.yaml, then the platform config dir]' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -l log-level -d 'Log level; wins over -v, -q and log.level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -l log-file -d 'Write log lines to this file, rotated daily (overrides log.file)' -r -F
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -s v -l verbose -d 'More output: -v debug, -vv trace (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -s q -l quiet -d 'Only warnings and errors (overrides log.level)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand man" -s h -l help -d 'Print help'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "sync" -d 'One pass per folder, then exit'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "run" -d 'Run as a service: a pass, then watch and poll'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "check" -d 'Check the config, connect, and report TLS and server features'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "status" -d 'What the state store knows about each folder'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "service" -d 'Install, remove or inspect the system service (systemd on Linux, the Service Control Manager on Windows)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "demo" -d 'Start an embedded FTPS server on loopback and sync sample folders with it'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "completions" -d 'Print a shell completion script, e.g. `ftps-sync completions bash > /etc/bash_completion.d/ftps-sync`'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "man" -d 'Print the manual page (roff), e.g. `ftps-sync man | man -l -`'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and not __fish_seen_subcommand_from sync run check status service demo completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and __fish_seen_subcommand_from service" -f -a "install" -d 'Install `run` with this config as a service, enable and start it'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and __fish_seen_subcommand_from service" -f -a "uninstall" -d 'Stop and remove the service; the config, state and folders stay'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and __fish_seen_subcommand_from service" -f -a "status" -d 'Whether the service is installed and running, with which config, and its last passes'
complete -c ftps-sync -n "__fish_ftps_sync_using_subcommand help; and __fish_seen_subcommand_from service" -f -a "run" -d 'What the Windows Service Control Manager starts; not for use in a console'
