#include "dispatch.h"

int main(int argc, char **argv) { return vg_svc_main(&dispatch_service, argc, argv); }
