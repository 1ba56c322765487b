#include "notifier.h"

int main(int argc, char **argv) { return vg_svc_main(&notifier_service, argc, argv); }
