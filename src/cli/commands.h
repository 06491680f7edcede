/* commands.h — the subcommands of the `canary` tool.
 *
 * Each takes the arguments after its name (argv[0] is the subcommand name) and returns the
 * process exit status: 0 success, 1 failure at run time, 2 bad usage. */
#ifndef CANARY_CLI_COMMANDS_H
#define CANARY_CLI_COMMANDS_H

/* canary simulate: a simulated fleet sending readings to canaryd (simulate.c). */
int cmd_simulate(int argc, char **argv);

/* canary attack: the attack simulator's dispatcher — mitm-mqtt, mitm-http, device
 * (attack.c). */
int cmd_attack(int argc, char **argv);

/* canary attack device: a compromised device, holding its key, that lies about its values
 * (attack_device.c). argv[0] is "device". */
int attack_device_main(int argc, char **argv);

/* canary alerts: canaryd's alerts on a terminal, once or following (alerts.c). */
int cmd_alerts(int argc, char **argv);

/* canary train: an Isolation Forest from a CSV file or canaryd's store (train.c). */
int cmd_train(int argc, char **argv);

/* canary score: a model's scores for the rows of a CSV file (score.c). */
int cmd_score(int argc, char **argv);

/* canary eval: a model against labelled data, with plots (eval.c). */
int cmd_eval(int argc, char **argv);

/* canary replay: a CSV file or a directory of them through canaryd's detectors (replay.c). */
int cmd_replay(int argc, char **argv);

/* canary notify test: one test message over one alert channel, with canaryd's notification
 * settings (notify_cmd.c). */
int cmd_notify(int argc, char **argv);

/* canary device: device credentials through canaryd's REST API (device.c). */
int cmd_device(int argc, char **argv);

/* canary user / canary token: users and API tokens through canaryd's REST API (user.c). */
int cmd_user(int argc, char **argv);
int cmd_token(int argc, char **argv);

/* canary broker-config: a locked-down Mosquitto configuration, password file and ACL
 * (broker_config.c). */
int cmd_broker_config(int argc, char **argv);

/* canary export: readings from canaryd's store as CSV, to label and train on (export.c). */
int cmd_export(int argc, char **argv);

/* canary cert: a self-signed TLS certificate and key for a first start (cert.c). */
int cmd_cert(int argc, char **argv);

#endif
