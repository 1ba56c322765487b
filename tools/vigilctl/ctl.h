/* vigilctl: the operator CLI. One file per command. */
#ifndef VIGILCTL_H
#define VIGILCTL_H

#include "bus.h"
#include "config.h"

#include <stdint.h>

/* Shared by the commands: the loaded configuration and a bus connection. */
struct ctl {
    struct vg_config cfg;
    struct vg_bus *bus;
};

vg_status ctl_connect(struct ctl *c);
/* Expand "alerts" to "<prefix>.alerts.>", keep anything with a dot. */
void ctl_expand_subject(const struct ctl *c, const char *arg, char *out, size_t cap);
int ctl_interrupted(void);

int ctl_cmd_tail(struct ctl *c, int argc, char **argv);
int ctl_cmd_pub(struct ctl *c, int argc, char **argv);
int ctl_cmd_face(struct ctl *c, int argc, char **argv);
/* Random bytes on a subject: bad-input and log-flood tests. */
int ctl_cmd_flood(struct ctl *c, int argc, char **argv);
int ctl_cmd_summary(struct ctl *c, int argc, char **argv);
/* "dlq list" and "dlq replay": the notifier's dead letters. */
int ctl_cmd_dlq(struct ctl *c, int argc, char **argv);
/* "faces add|list|remove|profile|test": enrolment for every matcher. */
int ctl_cmd_faces(struct ctl *c, int argc, char **argv);
/* 1 when a "faces" command is one of the Rekognition-only forms (index,
 * create-collection, create-table, or list/profile with --collection or
 * --table), kept for scripts; those go to ctl_cmd_aws. */
int ctl_faces_is_aws_form(int argc, char **argv);
/* The one face of a photo, cropped as dispatch crops faces (JPEG, malloc'ed). */
vg_status ctl_face_crop_photo(struct ctl *c, const char *path, uint8_t **jpeg, size_t *len);
/* "aws whoami" and "faces ..." */
int ctl_cmd_aws(struct ctl *c, int argc, char **argv);
/* "arm [MODE]": show or set the arm mode. */
int ctl_cmd_arm(struct ctl *c, int argc, char **argv);

#endif
